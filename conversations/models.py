"""What happens in a chat: conversations, messages, turns, their stream events and AI calls."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from chatbots.models import Chatbot


class Conversation(models.Model):
    """The seeds' conversation_sessions / chat_sessions. Its id is the public session_id."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RESOLVED = "resolved", "Resolved"
        ENDED = "ended", "Ended"

    class Handling(models.TextChoices):
        """Who answers the customer now (docs/inbox.md): the bot, nobody yet, or a person."""

        BOT = "bot", "Bot"
        WAITING = "waiting_for_agent", "Waiting for a person"
        AGENT = "with_agent", "With a person"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="conversations")
    user_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    is_resolved = models.BooleanField(default=False)
    message_count = models.PositiveIntegerField(default=0)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    resolution_notes = models.TextField(blank=True)
    ended_reason = models.CharField(max_length=255, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    handling = models.CharField(max_length=20, choices=Handling.choices, default=Handling.BOT)
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
    )
    # The open "human turn" (Turn.Kind.HUMAN) whose event log carries the person's part of the
    # conversation to the widget; null while the bot answers.
    human_turn = models.ForeignKey(
        "Turn", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handoff_at = models.DateTimeField(null=True, blank=True)
    # Null for customers. A staff preview (chatbots.versions, docs/versions.md) runs against
    # "draft" (the rows as saved now) or a version number, and is kept out of analytics,
    # dashboards, the inbox and the customer rate limits.
    preview = models.CharField(max_length=12, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_activity_at"]
        indexes = [
            # Serves "this visitor's active/unresolved sessions" (seed 003 session lists).
            models.Index(
                fields=["chatbot", "user_id", "status", "-last_activity_at"],
                name="conversation_user_sessions",
            ),
            # Serves inactivity expiry and retention sweeps.
            models.Index(fields=["last_activity_at"], name="conversation_last_activity"),
            # Serves the inbox's lists and counts (waiting / with a person), per chatbot.
            models.Index(
                fields=["chatbot", "handling", "-last_activity_at"],
                condition=~Q(handling="bot"),
                name="conversation_inbox",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chatbot.public_id}:{self.id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "Customer"
        ASSISTANT = "assistant", "Chatbot"
        SYSTEM = "system", "System"
        AGENT = "agent", "Agent"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    type = models.CharField(max_length=20, default="text")
    sequence = models.PositiveIntegerField()
    flow = models.CharField(max_length=50, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Who wrote a message of role `agent` (a shop member).
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "sequence"]
        constraints = [
            # Invariant: a transcript has one order; also serves history paging by sequence.
            models.UniqueConstraint(
                fields=["conversation", "sequence"], name="unique_message_sequence"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}#{self.sequence}"


class Turn(models.Model):
    """One user message and the answer to it: the seeds' streaming_sessions, as a state machine."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        # One customer message answered by the bot (run by a worker).
        AI = "ai", "Bot answer"
        # A person's part of the conversation, from the request for a person to the hand-back:
        # its events (agent_joined, agent_message, typing, …) are written by the inbox services,
        # not a worker, and it stays running until then (docs/inbox.md).
        HUMAN = "human", "Person"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.AI)
    user_message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="turn_asked"
    )
    assistant_message = models.OneToOneField(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="turn_answered"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    flow = models.CharField(max_length=50, blank=True, help_text="The answer flow that ran.")
    route = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    last_event_id = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    error_category = models.CharField(max_length=30, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Invariant: a retried request with the same Idempotency-Key never starts a second turn.
            models.UniqueConstraint(
                fields=["conversation", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="unique_turn_idempotency_key",
            ),
        ]
        indexes = [
            # Serves the stale-turn reaper: running turns whose heartbeat stopped.
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=Q(status__in=["pending", "running"]),
                name="turn_unfinished",
            ),
            # Serves retention of finished turns and their events.
            models.Index(fields=["finished_at"], name="turn_finished_at"),
            # Serves services.first_message_submit's look-up of a retried first message: turns
            # with this Idempotency-Key of the chatbot's conversations (the unique constraint
            # above leads with the conversation, which a first message does not know yet).
            models.Index(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="turn_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"turn {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class StreamEvent(models.Model):
    """Durable log of a turn's events (the seeds' streaming_events), written in batches."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField(help_text="The event id: 1, 2, 3 … within the turn.")
    event = models.CharField(max_length=30)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["turn", "seq"]
        constraints = [
            # Invariant: ids are unique within a turn; also serves replay (turn, seq > N).
            models.UniqueConstraint(fields=["turn", "seq"], name="unique_stream_event_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.event}#{self.seq}"


class AICall(models.Model):
    """One upstream AI call: the raw log the conversation index (seed 004) is built from."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="ai_calls")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="ai_calls"
    )
    turn = models.ForeignKey(
        Turn, on_delete=models.SET_NULL, null=True, blank=True, related_name="ai_calls"
    )
    endpoint_kind = models.CharField(max_length=10)
    endpoint_name = models.CharField(max_length=100)
    flow = models.CharField(max_length=50)
    purpose = models.CharField(max_length=10, help_text="answer, router, extractor, …")
    question = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error_code = models.CharField(max_length=50, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "AI call"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.endpoint_kind}/{self.flow} ({self.status})"

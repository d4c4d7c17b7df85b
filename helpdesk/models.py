"""Handing a conversation to people: the shop's helpdesk, handoff requests and ratings."""

from __future__ import annotations

import re
import uuid

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from chatbots.models import Chatbot
from chatbots.secrets import EncryptedSecretField
from conversations.models import Conversation
from outbound.policy import url_errors

SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class HelpdeskConnection(models.Model):
    class Kind(models.TextChoices):
        FRESHDESK = "freshdesk", "Freshdesk"
        ZENDESK = "zendesk", "Zendesk"

    chatbot = models.OneToOneField(Chatbot, on_delete=models.CASCADE, related_name="helpdesk")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FRESHDESK)
    active = models.BooleanField(
        default=True, help_text="Off: the widget offers no handoff and no contact form."
    )
    domain = models.CharField(
        max_length=255,
        help_text="Freshdesk: acme (for acme.freshdesk.com; custom domains are not served by the "
        "API). Zendesk: acme (for acme.zendesk.com). A full https:// address also works.",
    )
    api_key = EncryptedSecretField(
        "API key / token", blank=True, help_text="Stored encrypted; never shown again."
    )
    agent_email = models.EmailField(
        blank=True, help_text="Zendesk only: the agent whose API token this is."
    )
    webhook_secret = EncryptedSecretField(
        "Webhook secret",
        blank=True,
        help_text="Agents' replies in the helpdesk come back into the chat through a webhook "
        "(docs/inbox.md). Zendesk: the webhook's signing secret. Freshdesk: a secret you also "
        "send in the automation's X-Chatbot-Webhook-Secret header. Empty: none are accepted.",
    )
    priority = models.PositiveSmallIntegerField(
        default=1,
        choices=[(1, "Low"), (2, "Medium"), (3, "High"), (4, "Urgent")],
        help_text="Priority of the tickets the chatbot creates.",
    )
    tags = ArrayField(
        models.CharField(max_length=50),
        default=list,
        blank=True,
        help_text="Tags put on every ticket, comma-separated (“chatbot” is always added).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "helpdesk connection"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.chatbot.public_id}"

    @property
    def api_base(self) -> str:
        domain = self.domain.strip().rstrip("/")
        if domain.startswith(("https://", "http://")):
            return domain
        if "." in domain:
            return f"https://{domain}"
        return f"https://{domain}.{self.kind}.com"

    def clean(self) -> None:
        errors = {}
        domain = self.domain.strip().rstrip("/").lower()
        bare = not domain.startswith(("https://", "http://")) and "." not in domain
        if bare and not SUBDOMAIN.match(domain):
            errors["domain"] = "Enter the helpdesk's name, e.g. acme for acme.freshdesk.com."
        self.domain = domain
        if not self.api_key:
            errors["api_key"] = "Enter the API key."
        if self.kind == self.Kind.ZENDESK and not self.agent_email:
            errors["agent_email"] = "Zendesk API tokens belong to an agent: enter their email."
        if "domain" not in errors:
            # Not this machine nor its private networks (outbound/guard.py).
            errors.update(url_errors(domain=self.api_base))
        if errors:
            raise ValidationError(errors)


class Handoff(models.Model):
    """A request to reach a person (handoff or the contact form) and the ticket it became."""

    class Kind(models.TextChoices):
        HANDOFF = "handoff", "Talk to a person"
        CONTACT = "contact", "Contact form"

    class Mode(models.TextChoices):
        LIVE = "live", "Live (support is open)"
        TICKET = "ticket", "Ticket (answered by email)"

    class State(models.TextChoices):
        PENDING = "pending", "Creating the ticket"
        CREATED = "created", "Ticket created"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="handoffs"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=500, blank=True)
    requester_name = models.CharField(max_length=200, blank=True)
    requester_email = models.EmailField(blank=True)
    message = models.TextField(blank=True, help_text="What the customer wrote in the form.")
    ticket_id = models.CharField(max_length=50, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requests = models.PositiveSmallIntegerField(
        default=1,
        help_text="Customer requests in this one: later ones made while it was pending are "
        "appended to it, and count against the daily limit.",
    )
    resend = models.BooleanField(
        default=False,
        help_text="It failed only because the helpdesk was unreachable or busy: it is sent "
        "again (helpdesk.tasks.resend_failed) until it gets through.",
    )
    error = models.TextField(blank=True, help_text="Why the ticket could not be created.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Invariant: a double click or a retried request never opens two tickets at once.
            models.UniqueConstraint(
                fields=["conversation", "kind"],
                condition=Q(state="pending"),
                name="one_pending_handoff_per_kind",
            ),
        ]
        indexes = [
            # Serves "this conversation's latest handoff" (support endpoint) and the per-day
            # request limit per conversation.
            models.Index(fields=["conversation", "-created_at"], name="handoff_conversation"),
            # Serves retention (HELPDESK_RETENTION_DAYS).
            models.Index(fields=["created_at"], name="handoff_created"),
            # Serves handoffs_resend: failed handoffs waiting for the helpdesk to come back.
            models.Index(
                fields=["created_at"],
                condition=Q(state="failed", resend=True),
                name="handoff_to_resend",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.state})"


class ConversationRating(models.Model):
    """The customer's rating of a conversation: 1-5 and an optional comment (latest wins)."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="rating"
    )
    score = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Invariant: a score is 1-5 whoever writes the row.
            models.CheckConstraint(
                condition=Q(score__gte=1) & Q(score__lte=5), name="rating_score_1_to_5"
            ),
        ]
        indexes = [
            # Serves retention (HELPDESK_RETENTION_DAYS) and "ratings since" reports.
            models.Index(fields=["created_at"], name="rating_created"),
        ]

    def __str__(self) -> str:
        return f"{self.score}/5"

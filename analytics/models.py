"""What analytics keeps: per-turn analysis, context chunks, turn metrics and the conversation index.

Everything here is derived from conversations (turns, messages, AI calls) and can be rebuilt.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q

from chatbots.models import Chatbot
from conversations.models import Conversation, Message, Turn

# The full-text configuration of the conversation index: questions come in many languages, so
# no stemming (a Danish stemmer would mangle English and vice versa).
INDEX_SEARCH_CONFIG = "simple"


class ConversationAnalysis(models.Model):
    """Topic, quality score, sentiment and outcome of a conversation as of one finished turn."""

    class Sentiment(models.TextChoices):
        POSITIVE = "positive", "Positive"
        NEUTRAL = "neutral", "Neutral"
        NEGATIVE = "negative", "Negative"

    class Outcome(models.TextChoices):
        ANSWERED = "answered", "Answered"
        HANDED_OFF = "handed_off", "Handed off to a person"
        UNANSWERED = "unanswered", "Unanswered"

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="analysis")
    # No separate FK indexes: the composite indexes below lead with these columns.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="analyses", db_index=False
    )
    chatbot = models.ForeignKey(
        Chatbot, on_delete=models.CASCADE, related_name="analyses", db_index=False
    )
    topic = models.CharField(max_length=100, blank=True)
    score = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1 (did not help) to 5 (fully answered)."
    )
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    handoff_reason = models.CharField(max_length=300, blank=True)
    analyser = models.CharField(
        max_length=120,
        help_text="`flow:<name>` or `builtin` (heuristic), with why if it fell back.",
    )
    details = models.JSONField(default=dict, blank=True)
    turn_finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "conversation analysis"
        verbose_name_plural = "conversation analyses"
        ordering = ["-created_at"]
        # The OneToOne on `turn` is the unique constraint that makes analysis idempotent per turn.
        indexes = [
            # Serves "the latest analysis of each conversation" (DISTINCT ON conversation).
            models.Index(fields=["conversation", "-created_at"], name="analysis_conv_latest"),
            # Serves the dashboard and re-analysis by chatbot and date range.
            models.Index(fields=["chatbot", "created_at"], name="analysis_chatbot_created"),
            # Serves retention (analytics_cleanup) and date-range re-analysis of all bots.
            models.Index(fields=["created_at"], name="analysis_created"),
        ]

    def __str__(self) -> str:
        return f"{self.topic or '—'} / {self.score or '—'} / {self.outcome}"


class ContextChunk(models.Model):
    """One knowledge passage behind an answer (Flowise sourceDocuments, builtin matches)."""

    # Indexed by the unique (message, position) constraint below.
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="context_chunks", db_index=False
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="context_chunks"
    )
    position = models.PositiveSmallIntegerField()
    page_content = models.TextField()
    source = models.CharField(max_length=500, blank=True, help_text="Title, file or URL.")
    score = models.FloatField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "position"]
        constraints = [
            # Invariant: storing a message's chunks twice (a re-delivered task) adds nothing;
            # also serves the transcript view's "chunks of these messages".
            models.UniqueConstraint(fields=["message", "position"], name="unique_chunk_position"),
        ]
        indexes = [
            # Serves retention (analytics_cleanup).
            models.Index(fields=["created_at"], name="chunk_created"),
        ]

    def __str__(self) -> str:
        return f"{self.source or 'passage'} #{self.position}"


class TurnMetrics(models.Model):
    """Where a finished turn's time went (the seed's conversation_processing_metrics)."""

    PHASES = (
        "queue_ms",
        "config_load_ms",
        "routing_ms",
        "order_lookup_ms",
        "image_ms",
        "upstream_connect_ms",
        "first_token_ms",
        "streaming_ms",
        "persistence_ms",
        "total_ms",
        "time_to_first_token_ms",
    )

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="metrics")
    # Indexed by metrics_chatbot_created below.
    chatbot = models.ForeignKey(
        Chatbot, on_delete=models.CASCADE, related_name="turn_metrics", db_index=False
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="turn_metrics"
    )
    flow = models.CharField(max_length=50, blank=True)
    endpoint_kind = models.CharField(max_length=10, blank=True)
    endpoint_name = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10)
    error_code = models.CharField(max_length=50, blank=True)
    error_category = models.CharField(max_length=30, blank=True)
    queue_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From the message being stored to a worker starting."
    )
    config_load_ms = models.PositiveIntegerField(null=True, blank=True)
    routing_ms = models.PositiveIntegerField(null=True, blank=True)
    order_lookup_ms = models.PositiveIntegerField(null=True, blank=True)
    image_ms = models.PositiveIntegerField(null=True, blank=True)
    upstream_connect_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Answer call: request sent to response headers."
    )
    first_token_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Answer call: request sent to its first token."
    )
    streaming_ms = models.PositiveIntegerField(null=True, blank=True)
    persistence_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Turn start to the first token the customer received."
    )
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(
        default=False, help_text="No usage from the service: completion tokens counted as words."
    )
    tokens_per_second = models.FloatField(null=True, blank=True)
    ai_calls = models.PositiveSmallIntegerField(default=0)
    extra = models.JSONField(default=dict, blank=True, help_text="Other timings providers wrote.")
    created_at = models.DateTimeField(help_text="When the turn finished.")

    class Meta:
        verbose_name = "turn metrics"
        verbose_name_plural = "turn metrics"
        ordering = ["-created_at"]
        indexes = [
            # Serves processing-metrics percentiles over a window, per chatbot.
            models.Index(fields=["chatbot", "created_at"], name="metrics_chatbot_created"),
            # Serves the same over all chatbots and the batched retention cleanup.
            models.Index(fields=["created_at"], name="metrics_created"),
        ]

    def __str__(self) -> str:
        return f"{self.flow or '—'} {self.status} {self.total_ms} ms"


class ConversationSummary(models.Model):
    """The conversation index (seed 004's ai-proxy-conversations), built from AICall rows."""

    conversation_id = models.UUIDField(primary_key=True)
    # Indexed by summary_chatbot_recent below (one index less for the sync to maintain).
    chatbot = models.ForeignKey(
        Chatbot, on_delete=models.CASCADE, related_name="conversation_summaries", db_index=False
    )
    username = models.CharField(max_length=200, blank=True)
    first_message_time = models.DateTimeField()
    last_message_time = models.DateTimeField()
    message_count = models.PositiveIntegerField()
    first_question = models.TextField(blank=True)
    last_question = models.TextField(blank=True)
    # The calls the first/last values came from: ties in time are broken by call id, so a merge
    # of two batches gives the same answer as one batch.
    first_call_id = models.BigIntegerField()
    last_call_id = models.BigIntegerField()
    model = models.CharField(max_length=200, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    total_tokens = models.BigIntegerField(default=0)
    message_ids = ArrayField(models.BigIntegerField(), default=list)
    search = models.GeneratedField(
        expression=SearchVector("first_question", "last_question", config=INDEX_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "indexed conversation"
        ordering = ["-last_message_time", "-conversation_id"]
        indexes = [
            # Serves the default list (newest first), the `from` filter and index retention.
            models.Index(fields=["-last_message_time", "-conversation_id"], name="summary_recent"),
            # Serves ?username= (seed 004) newest first.
            models.Index(
                fields=["username", "-last_message_time"],
                name="summary_username_recent",
                condition=~Q(username=""),
            ),
            # Serves ?chatbot= newest first.
            models.Index(fields=["chatbot", "-last_message_time"], name="summary_chatbot_recent"),
            # Serves ?model= newest first and its capped count (a handful of models share the
            # rows, so without it the count scans thousands of rows).
            models.Index(fields=["model", "-last_message_time"], name="summary_model_recent"),
            # Serves ?q= full-text search over first and last question.
            GinIndex(fields=["search"], name="summary_search"),
        ]

    def __str__(self) -> str:
        return str(self.conversation_id)


class SyncState(models.Model):
    """One row per derived index: its watermark and whether it exists (seed 004's init/delete)."""

    CONVERSATION_INDEX = "conversation-index"

    name = models.CharField(max_length=50, primary_key=True)
    exists = models.BooleanField(
        default=False, help_text="Initialised (POST /api/sync/init or the first sync)."
    )
    watermark = models.BigIntegerField(
        default=0, help_text="Highest AICall id merged into the index."
    )
    # AICall ids at or below the watermark that were not visible yet when it moved (their
    # transaction had not committed): {"id": "first seen missing at (ISO time)"}.
    pending_ids = models.JSONField(default=dict, blank=True)
    # Indexed conversations per chatbot id ("all" for the total), recounted under the lock by
    # every change, so unfiltered and per-chatbot lists get an exact total without counting.
    counts = models.JSONField(default=dict, blank=True)
    last_sync_started_at = models.DateTimeField(null=True, blank=True)
    last_sync_finished_at = models.DateTimeField(null=True, blank=True)
    last_result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "sync state"

    def __str__(self) -> str:
        return f"{self.name} @ {self.watermark}"

"""Turn metrics (where a turn's time went) and the retention of everything analytics stores."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from analytics.models import ContextChunk, ConversationAnalysis, TurnMetrics
from conversations.builtin import split_tokens
from conversations.models import AICall, Turn

logger = logging.getLogger(__name__)

# Turn.timings keys (written by the runner and by context providers) -> TurnMetrics fields.
TIMING_FIELDS = {
    "config_load_ms": "config_load_ms",
    "routing_ms": "routing_ms",
    "order_lookup_ms": "order_lookup_ms",
    "image_ms": "image_ms",
    "upstream_connect_ms": "upstream_connect_ms",
    "streaming_ms": "streaming_ms",
    "persistence_ms": "persistence_ms",
    "total_ms": "total_ms",
    # The runner's first_token_ms is measured from the turn's start: time to first token.
    "first_token_ms": "time_to_first_token_ms",
}


def _ms(value: Any) -> int | None:
    """A duration in whole milliseconds, or None for anything that is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value < 0:  # NaN or a clock that went backwards
        return None
    return round(value)


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def turn_metrics_values(*, turn: Turn, calls: list[AICall]) -> dict[str, Any]:
    """The TurnMetrics fields of a finished turn, from its timings and its AI calls."""
    timings = turn.timings or {}
    values: dict[str, Any] = {field: _ms(timings.get(key)) for key, field in TIMING_FIELDS.items()}
    values["extra"] = {
        key: value
        for key, value in timings.items()
        if key not in TIMING_FIELDS and _ms(value) is not None
    }
    if turn.started_at and turn.created_at:
        values["queue_ms"] = _ms((turn.started_at - turn.created_at).total_seconds() * 1000)
    answers = [c for c in calls if c.purpose == "answer"]
    answer = answers[-1] if answers else (calls[-1] if calls else None)
    values["first_token_ms"] = answer.first_token_ms if answer else None
    values["endpoint_kind"] = answer.endpoint_kind if answer else ""
    values["endpoint_name"] = answer.endpoint_name if answer else ""
    values["prompt_tokens"] = _sum([c.prompt_tokens for c in calls])
    values["completion_tokens"] = _sum([c.completion_tokens for c in calls])
    values["total_tokens"] = _sum([c.total_tokens for c in calls])
    values["ai_calls"] = len(calls)
    # Tokens per second of the streamed answer: the service's count when it gives one, else
    # the answer's words (the builtin answerer and some Flowise flows report no usage).
    answer_tokens = answer.completion_tokens if answer else None
    values["tokens_estimated"] = False
    if answer_tokens is None and turn.assistant_message is not None:
        answer_tokens = len(split_tokens(turn.assistant_message.content))
        values["tokens_estimated"] = True
    streaming_ms = values["streaming_ms"]
    values["tokens_per_second"] = (
        round(answer_tokens / (streaming_ms / 1000), 2)
        if answer_tokens and streaming_ms and streaming_ms > 0
        else None
    )
    values.update(
        chatbot_id=turn.conversation.chatbot_id,
        conversation_id=turn.conversation_id,
        flow=(turn.flow or (answer.flow if answer else ""))[:50],
        status=turn.status,
        error_code=turn.error_code,
        error_category=turn.error_category,
        created_at=turn.finished_at or timezone.now(),
    )
    return values


def turn_metrics_record(*, turn: Turn) -> TurnMetrics:
    """Create or refresh the metrics row of a finished turn (one per turn)."""
    calls = list(turn.ai_calls.exclude(purpose="analysis").order_by("pk"))
    values = turn_metrics_values(turn=turn, calls=calls)
    try:
        with transaction.atomic():
            metrics, _ = TurnMetrics.objects.update_or_create(turn=turn, defaults=values)
    except IntegrityError:
        # Two deliveries raced to create it; the other one's row is just as good.
        metrics = TurnMetrics.objects.get(turn=turn)
    return metrics


# --- retention ------------------------------------------------------------------------------------


def _delete_in_batches(queryset: QuerySet, *, batch_size: int, model: type[Model]) -> int:
    """Delete what `queryset` selects, `batch_size` rows per statement (short locks, no bloat
    spikes, never one huge transaction)."""
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        _, per_model = model.objects.filter(pk__in=ids).delete()
        deleted += per_model.get(model._meta.label, 0)


def analytics_cleanup(*, now: dt.datetime | None = None, batch_size: int = 5000) -> dict[str, int]:
    """Delete turn metrics older than METRICS_RETENTION_DAYS, analyses and context chunks older
    than ANALYSIS_RETENTION_DAYS and index entries idle longer than
    CONVERSATION_INDEX_RETENTION_DAYS. Batched; for the maintenance schedule."""
    now = now or timezone.now()
    result = {
        "turn_metrics": _delete_in_batches(
            TurnMetrics.objects.filter(
                created_at__lt=now - dt.timedelta(days=settings.METRICS_RETENTION_DAYS)
            ).order_by("created_at"),
            batch_size=batch_size,
            model=TurnMetrics,
        ),
    }
    analysis_cutoff = now - dt.timedelta(days=settings.ANALYSIS_RETENTION_DAYS)
    result["analyses"] = _delete_in_batches(
        ConversationAnalysis.objects.filter(created_at__lt=analysis_cutoff).order_by("created_at"),
        batch_size=batch_size,
        model=ConversationAnalysis,
    )
    result["context_chunks"] = _delete_in_batches(
        ContextChunk.objects.filter(created_at__lt=analysis_cutoff).order_by("created_at"),
        batch_size=batch_size,
        model=ContextChunk,
    )
    from analytics.services.conversation_index import conversation_index_prune

    result["indexed_conversations"] = conversation_index_prune(
        before=now - dt.timedelta(days=settings.CONVERSATION_INDEX_RETENTION_DAYS),
        batch_size=batch_size,
    )
    logger.info("analytics cleanup: %s", result)
    return result

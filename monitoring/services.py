"""Recording what went wrong: the error log (with redaction and a recovery suggestion) and the
counters the /metrics endpoint reads (errors by category, finished turns by status).

`error_record` is the public entry point other apps call whenever they handle a failure.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

from django.db import transaction

from aiclients.errors import redact as redact_credentials
from chatbots.models import Chatbot
from config.redaction import MASK, redact
from config.redis import get_redis
from conversations.models import AICall, Turn
from monitoring.logging import log_context
from monitoring.models import ErrorLog
from monitoring.selectors import describe_error, process_name, system_state
from monitoring.suggestions import suggestion_for

logger = logging.getLogger(__name__)

ERRORS_KEY = "cb:mon:errors"
TURNS_FINISHED_KEY = "cb:mon:turns:finished"
# Context keys whose values are never stored, whatever they hold.
SECRET_KEYS = ("key", "token", "secret", "password", "authorization", "cookie", "credential")
# Keys that contain a SECRET_KEYS word but name something harmless.
HARMLESS_KEYS = {
    "idempotency_key",
    "routing_key",
    "key_prefix",
    "tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_emitted",
    "max_tokens",
}


def _redact_text(text: str) -> str:
    return redact_credentials(redact(text))


def context_redact(value: Any, *, _depth: int = 0) -> Any:
    """A JSON-safe copy of `value` with secrets masked: known secret values anywhere, values of
    secret-sounding keys, and credential-looking text (Bearer …, api_key=…)."""
    if _depth > 8:
        return "…"
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            name = str(key)
            lowered = name.lower()
            if lowered not in HARMLESS_KEYS and any(word in lowered for word in SECRET_KEYS):
                cleaned[name] = MASK if item not in (None, "") else item
            else:
                cleaned[name] = context_redact(item, _depth=_depth + 1)
        return cleaned
    if isinstance(value, list | tuple | set):
        return [context_redact(item, _depth=_depth + 1) for item in value]
    if isinstance(value, str):
        return _redact_text(value)[:4000]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    return _redact_text(repr(value))[:1000]


def _chatbot_pk(chatbot_id: Any) -> int | None:
    """Accepts the chatbot's primary key or its public id."""
    if chatbot_id in (None, ""):
        return None
    if isinstance(chatbot_id, int):
        return chatbot_id
    text = str(chatbot_id)
    if text.isdigit():
        return int(text)

    return Chatbot.objects.filter(public_id=text).values_list("pk", flat=True).first()


def _shop_pk(*, chatbot_pk: int | None, turn_id: uuid.UUID | None) -> int | None:
    """The shop an entry belongs to (its chatbot's, else its turn's); None for platform ones."""
    if chatbot_pk is not None:
        return Chatbot.objects.filter(pk=chatbot_pk).values_list("shop_id", flat=True).first()
    if turn_id is not None:
        return (
            Chatbot.objects.filter(conversations__turns__pk=turn_id)
            .values_list("shop_id", flat=True)
            .first()
        )
    return None


def _turn_uuid(turn_id: Any) -> uuid.UUID | None:
    if turn_id in (None, ""):
        return None
    try:
        return turn_id if isinstance(turn_id, uuid.UUID) else uuid.UUID(str(turn_id))
    except ValueError:
        return None


def _count(key: str, field: str) -> None:
    def increment() -> None:
        try:
            get_redis().hincrby(key, field, 1)
        except Exception:
            logger.debug("monitoring counter %s not incremented (Redis unavailable)", key)

    transaction.on_commit(increment)


def error_record(
    *,
    category: str,
    code: str,
    message: str,
    chatbot_id: Any = None,
    turn_id: Any = None,
    context: dict[str, Any] | None = None,
    exc: BaseException | None = None,
    stack: str = "",
) -> ErrorLog:
    """Store one handled failure with its recovery suggestion and a snapshot of the system.

    The stack is `exc`'s traceback, or `stack` when the exception was formatted elsewhere (a
    failed turn's, formatted on the worker's loop). The request id is the one bound to the log
    lines of the code that failed (monitoring.logging), so the row leads to those lines.

    Never raises for a storage problem (the caller is already handling a failure): when the
    database cannot take the row, the entry is written to the log instead and returned unsaved.
    An unknown category is a programming error and raises ValueError.
    """
    if category not in ErrorLog.Category.values:
        raise ValueError(
            f"unknown error category {category!r}; use one of {', '.join(ErrorLog.Category.values)}"
        )
    if exc is not None:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    ids = log_context()
    entry = ErrorLog(
        category=category,
        code=(code or "UNKNOWN")[:60],
        message=_redact_text(message or "")[:4000],
        turn_id=_turn_uuid(turn_id),
        context=context_redact(context or {}),
        stack=_redact_text(stack)[:20000],
        suggestion=suggestion_for(category, code),
        request_id=ids.get("request_id", "")[:64],
        process=process_name()[:200],
    )
    _entry_place(entry, chatbot_id)
    logger.warning(
        "error recorded: %s/%s: %s",
        entry.category,
        entry.code,
        entry.message,
        extra={"error_category": entry.category, "error_code": entry.code},
    )
    if _entry_saved(entry):
        _count(ERRORS_KEY, category)
    return entry


def _entry_place(entry: ErrorLog, chatbot_id: Any) -> None:
    """The entry's chatbot and shop, and the system's state: each best effort, since the
    database or the process may be what failed (an unknown chatbot stays in the context)."""
    try:
        entry.chatbot_id = _chatbot_pk(chatbot_id)
        entry.shop_id = _shop_pk(chatbot_pk=entry.chatbot_id, turn_id=entry.turn_id)
    except Exception:
        entry.context["chatbot"] = context_redact(str(chatbot_id))
    try:
        entry.system_state = system_state()
    except Exception:
        entry.system_state = {"process": process_name()}


def _entry_saved(entry: ErrorLog) -> bool:
    """Save the entry in its own savepoint; a database that cannot take it gets the entry
    written to the log instead (error_record never raises for storage)."""
    try:
        with transaction.atomic():
            entry.save()
    except Exception as save_error:
        logger.error(
            "could not store the error log entry %s/%s (%s); context: %s",
            entry.category,
            entry.code,
            describe_error(save_error),
            entry.context,
        )
        return False
    return True


TURN_CATEGORIES = set(ErrorLog.Category.values)


def turn_failure_record(*, turn_id: Any, stack: str = "") -> ErrorLog | None:
    """Record a failed turn once (the turn keeps its own error_code/category/message), with the
    traceback of what failed it when something raised."""
    turn = (
        Turn.objects.filter(pk=turn_id)
        .values(
            "id",
            "status",
            "error_code",
            "error_category",
            "error_message",
            "worker",
            "flow",
            "conversation_id",
            "conversation__chatbot_id",
        )
        .first()
    )
    if turn is None or turn["status"] != Turn.Status.FAILED:
        return None
    code = turn["error_code"] or "TURN_FAILED"
    if ErrorLog.objects.filter(turn_id=turn["id"], code=code).exists():
        return None
    category = turn["error_category"]
    context: dict[str, Any] = {
        "conversation_id": str(turn["conversation_id"]),
        "worker": turn["worker"],
        "flow": turn["flow"],
    }
    if category not in TURN_CATEGORIES:
        context["turn_category"] = category
        category = ErrorLog.Category.STREAMING
    failed_call = (
        AICall.objects.filter(turn_id=turn["id"], status=AICall.Status.ERROR)
        .order_by("-created_at")
        .values(
            "endpoint_name",
            "endpoint_kind",
            "flow",
            "purpose",
            "error_code",
            "http_status",
            "attempts",
            "latency_ms",
        )
        .first()
    )
    if failed_call:
        context["ai_call"] = failed_call
    return error_record(
        category=category,
        code=code,
        message=turn["error_message"] or "The turn failed.",
        chatbot_id=turn["conversation__chatbot_id"],
        turn_id=turn["id"],
        context=context,
        stack=stack,
    )


def turn_finished_count(*, status: str) -> None:
    _count(TURNS_FINISHED_KEY, status)


def task_failure_record(
    *,
    task_name: str,
    task_id: str,
    exc: BaseException | None,
    args: Any = None,
    kwargs: Any = None,
    queue: str = "",
    retries: int = 0,
) -> ErrorLog:
    """A Celery task raised: shown on the operators' page as a recently failed task."""
    return error_record(
        category=ErrorLog.Category.WORKER,
        code="TASK_FAILED",
        message=f"{task_name} failed: {describe_error(exc) if exc else 'unknown error'}",
        context={
            "task": task_name,
            "task_id": task_id,
            "queue": queue,
            "retries": retries,
            "args": repr(args)[:500] if args else "",
            "kwargs": repr(kwargs)[:500] if kwargs else "",
        },
        exc=exc,
    )

"""Structured logs: every line carries the request, conversation, turn and task it belongs to.

The ids live in contextvars, set by RequestContextMiddleware for HTTP requests and by Celery's
task_prerun signal for tasks (monitoring.receivers); RequestContextFilter copies them onto each
record and JsonFormatter writes one JSON object per line when LOG_FORMAT=json. Secrets are
redacted by config.logging.RedactSecretsFilter, which stays in the handler's filter chain; the
formatters redact once more, because `extra=` fields do not pass through that filter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Any

from config.redaction import redact
from config.sync_async import SyncAsyncMiddleware

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
conversation_id_var: ContextVar[str] = ContextVar("conversation_id", default="")
turn_id_var: ContextVar[str] = ContextVar("turn_id", default="")
task_id_var: ContextVar[str] = ContextVar("task_id", default="")
task_name_var: ContextVar[str] = ContextVar("task_name", default="")
# The client address of an HTTP request (behind TRUSTED_PROXIES, the visitor's: config/client_address).
client_var: ContextVar[str] = ContextVar("client", default="")

CONTEXT_VARS: dict[str, ContextVar[str]] = {
    "request_id": request_id_var,
    "conversation_id": conversation_id_var,
    "turn_id": turn_id_var,
    "task_id": task_id_var,
    "task": task_name_var,
    "client": client_var,
}

# What we accept as an id from outside (headers, URLs, task arguments): no log injection.
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def safe_id(value: Any) -> str:
    text = str(value) if value is not None else ""
    return text if SAFE_ID.match(text) else ""


def new_request_id() -> str:
    return uuid.uuid4().hex


def log_context() -> dict[str, str]:
    """The ids bound right now (empty ones left out)."""
    return {name: var.get() for name, var in CONTEXT_VARS.items() if var.get()}


def log_context_bind(**ids: Any) -> dict[str, Token]:
    """Bind ids for the rest of this context; returns tokens for log_context_reset."""
    tokens = {}
    for name, value in ids.items():
        var = CONTEXT_VARS[name]
        tokens[name] = var.set(safe_id(value))
    return tokens


def log_context_reset(tokens: dict[str, Token]) -> None:
    for name, token in tokens.items():
        with contextlib.suppress(ValueError, RuntimeError):
            CONTEXT_VARS[name].reset(token)


@contextlib.contextmanager
def log_context_bound(**ids: Any) -> Iterator[None]:
    tokens = log_context_bind(**ids)
    try:
        yield
    finally:
        log_context_reset(tokens)


class RequestContextFilter(logging.Filter):
    """Puts the bound ids on every record (as attributes, empty when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT_VARS.items():
            if not getattr(record, name, ""):
                setattr(record, name, var.get())
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    *CONTEXT_VARS,
}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name, var in CONTEXT_VARS.items():
            value = getattr(record, name, "") or var.get()
            if value:
                data[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_clean(data), ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The plain text format, with the bound ids appended in brackets."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(
            f"{name}={value}"
            for name, var in CONTEXT_VARS.items()
            if (value := getattr(record, name, "") or var.get())
        )
        return redact(f"{text} [{ids}]" if ids else text)


class RequestContextMiddleware(SyncAsyncMiddleware):
    """Binds a request id (the caller's X-Request-ID if it is sane, else a new one) for the
    request, echoes it in the response, and binds the conversation/turn an /api/ request names
    (X-Session-ID header, `session_id` query parameter, or the URL's session/turn id)."""

    def _bind(self, request) -> dict[str, Token]:
        request_id = safe_id(request.headers.get("X-Request-ID", "")) or new_request_id()
        request.request_id = request_id
        conversation_id = ""
        if request.path.startswith("/api/"):
            conversation_id = safe_id(
                request.headers.get("X-Session-ID") or request.GET.get("session_id") or ""
            )
        return log_context_bind(
            request_id=request_id,
            conversation_id=conversation_id,
            turn_id="",
            client=request.META.get("REMOTE_ADDR") or "",
        )

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        tokens = self._bind(request)
        try:
            response = self.get_response(request)
        finally:
            log_context_reset(tokens)
        response["X-Request-ID"] = request.request_id
        return response

    async def __acall__(self, request):
        tokens = self._bind(request)
        try:
            response = await self.get_response(request)
        finally:
            log_context_reset(tokens)
        response["X-Request-ID"] = request.request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.path.startswith("/api/"):
            return None
        conversation = view_kwargs.get("session_id") or view_kwargs.get("conversation_id")
        if conversation:
            conversation_id_var.set(safe_id(conversation))
        if view_kwargs.get("turn_id"):
            turn_id_var.set(safe_id(view_kwargs["turn_id"]))
        return None

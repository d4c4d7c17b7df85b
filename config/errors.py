"""One error envelope for REST and WebSocket: {"error": {"code", "message", "details"}}, and one
registry of what each code means: its HTTP status, whether asking again may help, its error-log
category and, for a turn's failure, what the customer reads.

Codes are stable UPPER_SNAKE strings from ErrorCode (and the apps' own enums, which register
theirs with register_errors); messages are written for the person who reads them (a shop
visitor's widget or an integrator), never containing secrets. A raise site names the code and
the message; the status comes from the registry, so one code answers with one status wherever
it is raised.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.utils import translation
from django.utils.translation import gettext_noop
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from aiclients import errors as upstream

logger = logging.getLogger(__name__)


class ErrorCode(enum.StrEnum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    # A NUL, a lone surrogate or an out-of-range number in any field (config/input_guard.py).
    INVALID_INPUT = "INVALID_INPUT"
    MALFORMED_JSON = "MALFORMED_JSON"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    # The same Idempotency-Key sent again with a different message (422, nothing stored).
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    RATE_LIMITED = "RATE_LIMITED"
    CHATBOT_NOT_FOUND = "CHATBOT_NOT_FOUND"
    # The conversation's chatbot was switched off in the admin: 403 on every path of it.
    CHATBOT_INACTIVE = "CHATBOT_INACTIVE"
    CONVERSATION_NOT_FOUND = "CONVERSATION_NOT_FOUND"
    CONVERSATION_CLOSED = "CONVERSATION_CLOSED"
    TURN_NOT_FOUND = "TURN_NOT_FOUND"
    TURN_IN_PROGRESS = "TURN_IN_PROGRESS"
    RESUME_POINT_GONE = "RESUME_POINT_GONE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


NETWORK, UPSTREAM_AI, STREAMING, TEMPLATE = "network", "upstream_ai", "streaming", "template"


@dataclasses.dataclass(frozen=True)
class ErrorSpec:
    """What a code means, the same shape for a REST answer's code and a turn's failure code."""

    # The HTTP status of a REST answer with this code; None for a turn's failure code, which
    # reaches the customer as a stream event, never as an HTTP answer.
    status: int | None = None
    retryable: bool = False  # asking again (later) may help
    category: str = ""  # the error log's category (a turn's failure)
    # What the customer reads, in English: a message id of Django's translation machinery, read
    # in the customer's language by customer_text (locale/<language>/LC_MESSAGES/django.po).
    text: str = ""


E = ErrorCode
# Every REST code and its status. The apps' own codes (images, helpdesk, analytics, monitoring)
# join through register_errors when their error_codes module is imported.
API_ERRORS: dict[str, ErrorSpec] = {
    E.VALIDATION_ERROR: ErrorSpec(400),
    E.INVALID_INPUT: ErrorSpec(400),
    E.MALFORMED_JSON: ErrorSpec(400),
    E.UNSUPPORTED_MEDIA_TYPE: ErrorSpec(415),
    E.PAYLOAD_TOO_LARGE: ErrorSpec(413),
    E.REQUEST_TIMEOUT: ErrorSpec(408, retryable=True),
    E.NOT_AUTHENTICATED: ErrorSpec(401),
    E.PERMISSION_DENIED: ErrorSpec(403),
    E.ORIGIN_NOT_ALLOWED: ErrorSpec(403),
    E.NOT_FOUND: ErrorSpec(404),
    E.METHOD_NOT_ALLOWED: ErrorSpec(405),
    E.CONFLICT: ErrorSpec(409),
    E.IDEMPOTENCY_KEY_REUSED: ErrorSpec(422),
    E.RATE_LIMITED: ErrorSpec(429, retryable=True),
    E.CHATBOT_NOT_FOUND: ErrorSpec(404),
    E.CHATBOT_INACTIVE: ErrorSpec(403),
    E.CONVERSATION_NOT_FOUND: ErrorSpec(404),
    E.CONVERSATION_CLOSED: ErrorSpec(409),
    E.TURN_NOT_FOUND: ErrorSpec(404),
    E.TURN_IN_PROGRESS: ErrorSpec(409, retryable=True),
    E.RESUME_POINT_GONE: ErrorSpec(410),
    E.SERVICE_UNAVAILABLE: ErrorSpec(503, retryable=True),
    E.INTERNAL_ERROR: ErrorSpec(500),
}
del E


def register_errors(specs: Mapping[str, ErrorSpec]) -> None:
    """An app's own REST codes join the registry (called by its error_codes module): a code
    keeps one meaning, so registering a known code again with another meaning is refused."""
    for code, spec in specs.items():
        if API_ERRORS.setdefault(code, spec) != spec:
            raise ValueError(f"error code {code} is registered twice with different meanings")


def error_status(code: str) -> int:
    """The HTTP status of a REST answer with `code`. A code outside the registry is a mistake
    in the product (tests/test_error_registry.py holds every enum to it), so it raises."""
    status = API_ERRORS[code].status
    if status is None:
        raise ValueError(f"error code {code} is not a REST answer's code")
    return status


class ApiError(Exception):
    """Raised by services and views; rendered into the envelope with its code's status.

    `status` overrides the registry's only where one code legitimately answers with two
    statuses; no raise site needs that today."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = error_status(code) if status is None else status
        self.details = details or {}
        self.headers = headers or {}


class DomainError(ApiError):
    """A service's refusal named for what happened (conversations.errors.ConversationClosed):
    the service says what went wrong and why; the class names the code, the registry its status.
    Still an ApiError, so every view, consumer and Socket.IO handler renders it unchanged."""

    error_code: ClassVar[str]

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(self.error_code, message, details=details, headers=headers)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The envelope of every refusal: a REST answer's body, a Socket.IO `error` event's data and,
    with its frame type, a WebSocket `error` frame (error_frame)."""
    return {"error": {"code": str(code), "message": message, "details": details or {}}}


def error_frame(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A WebSocket `error` frame (the customer's and the inbox's sockets): the envelope, typed."""
    return {"type": "error", **error_body(code, message, details)}


def error_response(err: ApiError) -> JsonResponse:
    response = JsonResponse(error_body(err.code, err.message, err.details), status=err.status)
    for key, value in err.headers.items():
        response[key] = value
    return response


def error_json(
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    """A refusal answered outside DRF's exception handler (middleware, handler404/500, plain
    Django views): the envelope with its code's registry status."""
    return error_response(ApiError(code, message, details=details, headers=headers))


_DRF_CODES = {
    drf_exceptions.ParseError: (ErrorCode.MALFORMED_JSON, "The request body is not valid JSON."),
    drf_exceptions.NotAuthenticated: (ErrorCode.NOT_AUTHENTICATED, "Authentication is required."),
    drf_exceptions.AuthenticationFailed: (ErrorCode.NOT_AUTHENTICATED, "Authentication failed."),
    drf_exceptions.PermissionDenied: (ErrorCode.PERMISSION_DENIED, "You may not do this."),
    drf_exceptions.NotFound: (ErrorCode.NOT_FOUND, "Not found."),
    drf_exceptions.MethodNotAllowed: (ErrorCode.METHOD_NOT_ALLOWED, "Method not allowed."),
    drf_exceptions.UnsupportedMediaType: (
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        "Send the request body as application/json.",
    ),
    drf_exceptions.Throttled: (ErrorCode.RATE_LIMITED, "Too many requests; try again shortly."),
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApiError):
        return Response(
            error_body(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(
            error_body(ErrorCode.VALIDATION_ERROR, "Some fields are missing or invalid.", details),
            status=400,
        )
    if isinstance(exc, drf_exceptions.APIException):
        code, message = _DRF_CODES.get(type(exc), (ErrorCode.VALIDATION_ERROR, str(exc.detail)))
        response = exception_handler(exc, context)
        headers = {}
        if response is not None and "Retry-After" in response:
            headers["Retry-After"] = response["Retry-After"]
        return Response(error_body(code, message), status=exc.status_code, headers=headers)
    return None


# --- How a turn ends in failure: the `error` stream event and Turn.error_code ----------------
# One registry for every code a turn can fail with, whoever ends it (the runner, the AI clients'
# UpstreamError, the reaper): whether asking again may help, its error-log category, and what the
# customer reads, in English here and in the bot's language (Chatbot.language) through Django's
# translation machinery: locale/da/LC_MESSAGES/django.po (compiled to django.mo by
# `manage.py compilemessages`) holds the Danish; languages without a catalogue read English.
# The AI clients stay free of Django and keep an English default per code (aiclients/errors.py);
# the runner puts the customer's language in here.


class TurnErrorCode(enum.StrEnum):
    # The AI clients' failure codes (aiclients/errors.py), the same strings by construction.
    UPSTREAM_CONNECT_TIMEOUT = upstream.UPSTREAM_CONNECT_TIMEOUT
    UPSTREAM_TIMEOUT = upstream.UPSTREAM_TIMEOUT
    UPSTREAM_UNAVAILABLE = upstream.UPSTREAM_UNAVAILABLE
    UPSTREAM_RATE_LIMITED = upstream.UPSTREAM_RATE_LIMITED
    UPSTREAM_AUTH = upstream.UPSTREAM_AUTH
    UPSTREAM_BAD_REQUEST = upstream.UPSTREAM_BAD_REQUEST
    UPSTREAM_BAD_RESPONSE = upstream.UPSTREAM_BAD_RESPONSE
    UPSTREAM_STREAM_ERROR = upstream.UPSTREAM_STREAM_ERROR
    UPSTREAM_TRUNCATED = upstream.UPSTREAM_TRUNCATED
    UPSTREAM_EMPTY = upstream.UPSTREAM_EMPTY
    UPSTREAM_TOO_LARGE = upstream.UPSTREAM_TOO_LARGE
    UPSTREAM_ABORTED = upstream.UPSTREAM_ABORTED
    # The turn's whole time (TURN_TOTAL_TIMEOUT) ran out.
    TURN_TIMEOUT = "TURN_TIMEOUT"
    # The chatbot has no enabled main flow to answer with.
    NO_ANSWER_FLOW = "NO_ANSWER_FLOW"
    # The reaper: the worker running the turn stopped sending heartbeats.
    WORKER_LOST = "WORKER_LOST"
    # The reaper: no worker picked the turn up in TURN_PENDING_TIMEOUT.
    NOT_STARTED = "NOT_STARTED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


C = TurnErrorCode
TURN_ERRORS: dict[str, ErrorSpec] = {
    C.UPSTREAM_CONNECT_TIMEOUT: ErrorSpec(
        retryable=True,
        category=NETWORK,
        text=gettext_noop("The assistant could not be reached in time. Please try again."),
    ),
    C.UPSTREAM_TIMEOUT: ErrorSpec(
        retryable=True,
        category=NETWORK,
        text=gettext_noop("The assistant took too long to answer. Please try again."),
    ),
    C.UPSTREAM_UNAVAILABLE: ErrorSpec(
        retryable=True,
        category=NETWORK,
        text=gettext_noop(
            "The assistant is temporarily unavailable. Please try again in a moment."
        ),
    ),
    C.UPSTREAM_RATE_LIMITED: ErrorSpec(
        retryable=True,
        category=UPSTREAM_AI,
        text=gettext_noop(
            "The assistant is receiving too many requests right now. Please try again in a moment."
        ),
    ),
    C.UPSTREAM_AUTH: ErrorSpec(
        retryable=False,
        category=UPSTREAM_AI,
        text=gettext_noop(
            "The assistant is not set up correctly (its access was refused). Please contact us."
        ),
    ),
    C.UPSTREAM_BAD_REQUEST: ErrorSpec(
        retryable=False,
        category=UPSTREAM_AI,
        text=gettext_noop("The assistant could not handle this request."),
    ),
    C.UPSTREAM_BAD_RESPONSE: ErrorSpec(
        retryable=True,
        category=UPSTREAM_AI,
        text=gettext_noop("The assistant sent an answer we could not read. Please try again."),
    ),
    C.UPSTREAM_STREAM_ERROR: ErrorSpec(
        retryable=True,
        category=UPSTREAM_AI,
        text=gettext_noop("The assistant ran into a problem while answering. Please try again."),
    ),
    C.UPSTREAM_TRUNCATED: ErrorSpec(
        retryable=True,
        category=NETWORK,
        text=gettext_noop("The answer was cut off. Please try again."),
    ),
    C.UPSTREAM_EMPTY: ErrorSpec(
        retryable=True,
        category=UPSTREAM_AI,
        text=gettext_noop("The assistant returned an empty answer. Please try again."),
    ),
    C.UPSTREAM_TOO_LARGE: ErrorSpec(
        retryable=False,
        category=UPSTREAM_AI,
        text=gettext_noop("This message or its attachment is too large for the assistant."),
    ),
    C.UPSTREAM_ABORTED: ErrorSpec(
        retryable=False,
        category=UPSTREAM_AI,
        text=gettext_noop("The answer was stopped."),
    ),
    C.TURN_TIMEOUT: ErrorSpec(
        retryable=True,
        category=STREAMING,
        text=gettext_noop("The answer took too long. Please try again in a moment."),
    ),
    C.NO_ANSWER_FLOW: ErrorSpec(
        retryable=False,
        category=TEMPLATE,
        text=gettext_noop("This chatbot is not set up yet."),
    ),
    C.WORKER_LOST: ErrorSpec(
        retryable=True,
        category=STREAMING,
        text=gettext_noop("The answer was interrupted. Please ask again."),
    ),
    C.NOT_STARTED: ErrorSpec(
        retryable=True,
        category=STREAMING,
        text=gettext_noop("We could not start answering. Please ask again."),
    ),
    C.INTERNAL_ERROR: ErrorSpec(
        retryable=True,
        category=STREAMING,
        text=gettext_noop("Something went wrong on our side. Please try again in a moment."),
    ),
}
del C


def customer_text(text: str, language: str) -> str:
    """`text` (an English message id) in the customer's language through Django's translation
    machinery; English where the product has no catalogue for the language (today Danish only)."""
    with translation.override(language):
        return translation.gettext(text)


def turn_error_text(code: str, language: str, *, default: str = "") -> str:
    """What a customer reads for a turn that failed with `code`, in the bot's language; `default`
    (as it is) for a code outside the registry, else the INTERNAL_ERROR text."""
    error = TURN_ERRORS.get(code)
    if error is None:
        if default:
            return default
        error = TURN_ERRORS[TurnErrorCode.INTERNAL_ERROR]
    return customer_text(error.text, language)


def error_event(code: str, message: str, *, retryable: bool | None = None) -> dict[str, Any]:
    """A failed turn's stream `error` event (docs/streaming.md), whoever ends the turn (the
    runner, the reaper): the code, the customer's message and whether asking again may help, the
    registry's word unless the failure knows better (an AI client's UpstreamError decides per
    response, e.g. a 429 without Retry-After)."""
    if retryable is None:
        retryable = TURN_ERRORS[code].retryable
    return {"code": str(code), "message": message, "retryable": retryable}

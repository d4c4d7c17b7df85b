"""One error envelope for REST and WebSocket: {"error": {"code", "message", "details"}}.

Codes are stable UPPER_SNAKE strings from ErrorCode; messages are written for the person who
reads them (a shop visitor's widget or an integrator), never containing secrets.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

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


class ApiError(Exception):
    """Raised by services and views; rendered into the envelope with its status."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int = 400,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.headers = headers or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message, "details": details or {}}}


def error_response(err: ApiError) -> JsonResponse:
    response = JsonResponse(error_body(err.code, err.message, err.details), status=err.status)
    for key, value in err.headers.items():
        response[key] = value
    return response


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

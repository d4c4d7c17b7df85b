"""API hardening that must happen before a view runs: body size (413) and last-resort errors.

Oversized bodies are refused from Content-Length before anything is read; anything a view did
not handle still leaves in the error envelope (and is logged), never as an HTML 500 page.
"""

from __future__ import annotations

import logging

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

from config.errors import ErrorCode, error_json

logger = logging.getLogger("config.api")


# REST under /api/, and seed 003's legacy POST /auth/login beside it.
API_PREFIXES = ("/api/", "/auth/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def body_limit_for(path: str) -> int:
    for prefix, limit in settings.API_BODY_LIMITS.items():
        if path.startswith(prefix):
            return limit
    return settings.API_MAX_BODY_BYTES


def too_large(limit: int) -> JsonResponse:
    return error_json(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"The request body is larger than {limit} bytes.",
        {"max_bytes": limit},
    )


def is_dependency_down(exception: BaseException) -> bool:
    """PostgreSQL or Redis cannot be reached: the client should retry, nothing is wrong with it."""
    import redis
    from django.db import InterfaceError, OperationalError

    return isinstance(
        exception, OperationalError | InterfaceError | redis.ConnectionError | redis.TimeoutError
    )


def service_unavailable() -> JsonResponse:
    return error_json(
        ErrorCode.SERVICE_UNAVAILABLE,
        "The service is briefly unavailable; please try again in a few seconds.",
        headers={"Retry-After": "5"},
    )


class ApiGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_api_path(request.path):
            limit = body_limit_for(request.path)
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_json(ErrorCode.VALIDATION_ERROR, "Content-Length is not a number.")
            if length > limit:
                return too_large(limit)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        if isinstance(exception, RequestDataTooBig):
            return too_large(body_limit_for(request.path))
        if is_dependency_down(exception):
            logger.warning(
                "dependency unavailable in %s %s: %s", request.method, request.path, exception
            )
            return service_unavailable()
        if isinstance(exception, RecursionError):
            return error_json(ErrorCode.MALFORMED_JSON, "The JSON is nested too deeply.")
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return error_json(
            ErrorCode.INTERNAL_ERROR, "Something went wrong on our side; it is logged."
        )


class SyncCorsMiddleware(CorsMiddleware):
    """django-cors-headers, run synchronously: our origin check reads the database."""

    sync_capable = True
    async_capable = False

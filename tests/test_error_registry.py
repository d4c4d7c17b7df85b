"""One registry of error codes (config.errors): every code a REST answer can carry has one HTTP
status, declared once, and a raise site names the code, not the status."""

from __future__ import annotations

import pytest

from analytics.error_codes import AnalyticsErrorCode
from config.errors import (
    API_ERRORS,
    ApiError,
    ErrorCode,
    ErrorSpec,
    error_status,
    register_errors,
)
from helpdesk.error_codes import HelpdeskErrorCode
from images.error_codes import ImageErrorCode
from monitoring.error_codes import MonitoringErrorCode

REST_ENUMS = [ErrorCode, ImageErrorCode, HelpdeskErrorCode, AnalyticsErrorCode, MonitoringErrorCode]


def test_every_rest_code_of_every_app_has_an_http_status():
    for enum in REST_ENUMS:
        for code in enum:
            assert isinstance(error_status(code), int), code


def test_an_api_error_answers_with_its_code_s_status_from_the_registry():
    assert ApiError(ErrorCode.CONVERSATION_CLOSED, "Ended.").status == 409
    assert ApiError(ImageErrorCode.IMAGE_TOO_LARGE, "Too large.").status == 413
    assert ApiError(HelpdeskErrorCode.HANDOFF_LIMIT_REACHED, "Later.").status == 429


def test_an_api_error_with_a_code_outside_the_registry_is_refused():
    with pytest.raises(KeyError):
        ApiError("NO_SUCH_CODE", "Nobody declared this code.")


def test_a_code_cannot_be_registered_twice_with_another_meaning():
    register_errors({ErrorCode.NOT_FOUND: ErrorSpec(404)})  # the same meaning again: harmless
    with pytest.raises(ValueError):
        register_errors({ErrorCode.NOT_FOUND: ErrorSpec(410)})
    assert API_ERRORS[ErrorCode.NOT_FOUND].status == 404

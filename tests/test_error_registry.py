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
    TurnErrorCode,
    error_body,
    error_event,
    error_frame,
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


def test_a_websocket_error_frame_is_the_rest_envelope_with_its_frame_type():
    body = error_body(ErrorCode.TURN_NOT_FOUND, "No such turn.", {"turn_id": "t"})
    assert error_frame(ErrorCode.TURN_NOT_FOUND, "No such turn.", {"turn_id": "t"}) == {
        "type": "error",
        **body,
    }
    assert body == {
        "error": {"code": "TURN_NOT_FOUND", "message": "No such turn.", "details": {"turn_id": "t"}}
    }


def test_a_turn_s_error_event_says_retryable_as_the_registry_does_unless_told_otherwise():
    assert error_event(TurnErrorCode.UPSTREAM_AUTH, "Refused.") == {
        "code": "UPSTREAM_AUTH",
        "message": "Refused.",
        "retryable": False,
    }
    assert error_event(TurnErrorCode.WORKER_LOST, "Ask again.")["retryable"] is True
    # An AI client's error decides per response (a 429 without Retry-After is not worth repeating).
    assert error_event("UPSTREAM_RATE_LIMITED", "Busy.", retryable=False)["retryable"] is False

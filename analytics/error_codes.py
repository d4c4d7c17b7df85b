"""Stable error codes of the analytics API (in the shared envelope, beside config.errors)."""

from __future__ import annotations

import enum

from config.errors import ErrorSpec, register_errors


class AnalyticsErrorCode(enum.StrEnum):
    INDEX_NOT_FOUND = "INDEX_NOT_FOUND"  # the conversation index was deleted or never built
    SYNC_IN_PROGRESS = "SYNC_IN_PROGRESS"


register_errors(
    {
        AnalyticsErrorCode.INDEX_NOT_FOUND: ErrorSpec(404),
        AnalyticsErrorCode.SYNC_IN_PROGRESS: ErrorSpec(409, retryable=True),
    }
)

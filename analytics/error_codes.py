"""Stable error codes of the analytics API (in the shared envelope, beside config.errors)."""

from __future__ import annotations

import enum


class AnalyticsErrorCode(enum.StrEnum):
    INDEX_NOT_FOUND = "INDEX_NOT_FOUND"  # the conversation index was deleted or never built
    SYNC_IN_PROGRESS = "SYNC_IN_PROGRESS"

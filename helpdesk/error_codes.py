"""Stable error codes of the helpdesk app (REST envelope `error.code`)."""

from __future__ import annotations

import enum


class HelpdeskErrorCode(enum.StrEnum):
    HELPDESK_NOT_CONFIGURED = "HELPDESK_NOT_CONFIGURED"
    HANDOFF_LIMIT_REACHED = "HANDOFF_LIMIT_REACHED"

"""Stable error codes of the helpdesk app (REST envelope `error.code`)."""

from __future__ import annotations

import enum

from config.errors import ErrorSpec, register_errors


class HelpdeskErrorCode(enum.StrEnum):
    HELPDESK_NOT_CONFIGURED = "HELPDESK_NOT_CONFIGURED"
    HANDOFF_LIMIT_REACHED = "HANDOFF_LIMIT_REACHED"


register_errors(
    {
        # The chatbot has no active helpdesk connection.
        HelpdeskErrorCode.HELPDESK_NOT_CONFIGURED: ErrorSpec(409),
        # More than HELPDESK_MAX_REQUESTS_PER_CONVERSATION requests in 24 hours.
        HelpdeskErrorCode.HANDOFF_LIMIT_REACHED: ErrorSpec(429, retryable=True),
    }
)

"""Read-only questions about handoffs that other apps ask (analytics' turn outcomes, quality's
check runs): helpdesk owns the Handoff rows, so the rule for "did this reach a person" is here."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError

from helpdesk.models import Handoff

logger = logging.getLogger(__name__)


def handoff_for(*, conversation_id: Any) -> tuple[bool, str]:
    """(handed off?, reason) of the conversation's latest handoff. A request whose ticket could
    not be created (state "failed") did not reach a person and does not count. A database error
    reads as no handoff, so a turn's analysis does not fail on it."""
    try:
        handoff = (
            Handoff.objects.filter(conversation_id=conversation_id)
            .exclude(state=Handoff.State.FAILED)
            .order_by("-created_at")
            .first()
        )
    except DatabaseError:
        logger.warning("helpdesk.Handoff could not be read; outcome ignores handoffs")
        return False, ""
    if handoff is None:
        return False, ""
    reason = handoff.reason or str(handoff.get_kind_display())
    return True, reason[:300]

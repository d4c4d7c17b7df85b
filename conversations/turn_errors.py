"""How a turn fails: TurnFailed (a code, the customer's text, retryable, category) and the
runner's own texts for situations that are not a failure code's.

A leaf of the turn runner (conversations.runner re-exports both) so that its parts, routing
and the AI calls, can raise and word failures without importing the runner.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

from aiclients.errors import UpstreamError
from config.errors import TURN_ERRORS, turn_error_text

# Texts for situations, not codes, in English (message ids of Django's translation machinery,
# read in the customer's language with config.errors.customer_text); what each failure code
# tells the customer is in config.errors.TURN_ERRORS.
MESSAGES = {
    # UPSTREAM_TOO_LARGE for an answer past ANSWER_MAX_CHARS (the code's own text is about a
    # message too large to send).
    "too_large": gettext_noop("The answer was too long and has been cut off."),
}


class TurnFailed(Exception):
    """A turn ends failed: what its error event and stored error say."""

    def __init__(self, code: str, message: str, *, retryable: bool, category: str) -> None:
        super().__init__(code)
        self.code, self.message, self.retryable, self.category = code, message, retryable, category

    @classmethod
    def of(cls, code: str, language: str) -> TurnFailed:
        """A failure as the registry (config.errors.TURN_ERRORS) describes its code."""
        error = TURN_ERRORS[code]
        return cls(
            code,
            turn_error_text(code, language),
            retryable=error.retryable,
            category=error.category,
        )

    @classmethod
    def from_upstream(cls, err: UpstreamError, language: str) -> TurnFailed:
        """An AI client's error, its default English text put in the customer's language (a
        text the client chose for the case stays)."""
        message = (
            turn_error_text(err.code, language, default=err.message)
            if err.default_message
            else err.message
        )
        return cls(err.code, message, retryable=err.retryable, category=err.category)

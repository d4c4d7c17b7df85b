"""One error type for every failure talking to an AI service, with stable codes and safe messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

UPSTREAM_CONNECT_TIMEOUT = "UPSTREAM_CONNECT_TIMEOUT"
UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
UPSTREAM_RATE_LIMITED = "UPSTREAM_RATE_LIMITED"
UPSTREAM_AUTH = "UPSTREAM_AUTH"
UPSTREAM_BAD_REQUEST = "UPSTREAM_BAD_REQUEST"
UPSTREAM_BAD_RESPONSE = "UPSTREAM_BAD_RESPONSE"
UPSTREAM_STREAM_ERROR = "UPSTREAM_STREAM_ERROR"
UPSTREAM_TRUNCATED = "UPSTREAM_TRUNCATED"
UPSTREAM_EMPTY = "UPSTREAM_EMPTY"
UPSTREAM_TOO_LARGE = "UPSTREAM_TOO_LARGE"
UPSTREAM_ABORTED = "UPSTREAM_ABORTED"

NETWORK = "network"
UPSTREAM_AI = "upstream_ai"

# code -> (retryable by the user, category, user-facing message)
CODES: dict[str, tuple[bool, str, str]] = {
    UPSTREAM_CONNECT_TIMEOUT: (
        True,
        NETWORK,
        "The assistant could not be reached in time. Please try again.",
    ),
    UPSTREAM_TIMEOUT: (True, NETWORK, "The assistant took too long to answer. Please try again."),
    UPSTREAM_UNAVAILABLE: (
        True,
        NETWORK,
        "The assistant is temporarily unavailable. Please try again in a moment.",
    ),
    UPSTREAM_RATE_LIMITED: (
        True,
        UPSTREAM_AI,
        "The assistant is receiving too many requests right now. Please try again in a moment.",
    ),
    UPSTREAM_AUTH: (
        False,
        UPSTREAM_AI,
        "The assistant is not set up correctly (its access was refused). Please contact us.",
    ),
    UPSTREAM_BAD_REQUEST: (False, UPSTREAM_AI, "The assistant could not handle this request."),
    UPSTREAM_BAD_RESPONSE: (
        True,
        UPSTREAM_AI,
        "The assistant sent an answer we could not read. Please try again.",
    ),
    UPSTREAM_STREAM_ERROR: (
        True,
        UPSTREAM_AI,
        "The assistant ran into a problem while answering. Please try again.",
    ),
    UPSTREAM_TRUNCATED: (True, NETWORK, "The answer was cut off. Please try again."),
    UPSTREAM_EMPTY: (
        True,
        UPSTREAM_AI,
        "The assistant returned an empty answer. Please try again.",
    ),
    UPSTREAM_TOO_LARGE: (
        False,
        UPSTREAM_AI,
        "This message or its attachment is too large for the assistant.",
    ),
    UPSTREAM_ABORTED: (False, UPSTREAM_AI, "The answer was stopped."),
}

REDACTED = "[redacted]"
_SECRET_PATTERNS = [
    # OpenAI echoes a masked form of a rejected key; even that does not belong in our logs.
    (re.compile(r"(Incorrect API key provided:\s*)\S+", re.I), r"\1" + REDACTED),
    (re.compile(r"(Bearer\s+)[^\s\"',;]+", re.I), r"\1" + REDACTED),
    (
        re.compile(
            r"((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+", re.I
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"\b(sk|pk|pcsk)-[A-Za-z0-9_\-*.]{8,}"), r"\1-" + REDACTED),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove the given secrets, and anything that looks like a credential, from text."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class UpstreamError(Exception):
    """A failed call to an AI service.

    `message` is for the end user; `detail` is for operators. Both pass through `redact`, with the
    call's own keys in `secrets`, so neither can leak a credential into logs or API responses.
    """

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        message: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        category: str | None = None,
        retry_after: float | None = None,
        tokens_emitted: int = 0,
        secrets: Iterable[str] = (),
    ):
        default_retryable, default_category, default_message = CODES.get(
            code, (False, UPSTREAM_AI, "The assistant could not answer.")
        )
        secrets = tuple(s for s in secrets if s)
        self.code = code
        # The code's own text (the runner puts it in the customer's language), not one chosen
        # for this case.
        self.default_message = message is None
        self.message = redact(message or default_message, secrets)
        self.detail = redact(detail, secrets)[:2000]
        self.status = status
        self.retryable = default_retryable if retryable is None else retryable
        self.category = category or default_category
        self.retry_after = retry_after
        self.tokens_emitted = tokens_emitted
        super().__init__(f"{code}: {self.detail or self.message}")

    def scrub(self, secrets: Iterable[str]) -> UpstreamError:
        """Redact more secrets from an already-built error (e.g. one raised deep in a parser)."""
        secrets = tuple(s for s in secrets if s)
        self.message = redact(self.message, secrets)
        self.detail = redact(self.detail, secrets)
        self.args = (f"{self.code}: {self.detail or self.message}",)
        return self

    def __repr__(self) -> str:
        return f"UpstreamError({self.code!r}, status={self.status!r}, detail={self.detail!r})"

    def as_dict(self) -> dict[str, Any]:
        """Everything an operator log line needs (already redacted)."""
        return {
            "code": self.code,
            "message": self.message,
            "detail": self.detail,
            "status": self.status,
            "retryable": self.retryable,
            "category": self.category,
            "retry_after": self.retry_after,
            "tokens_emitted": self.tokens_emitted,
        }

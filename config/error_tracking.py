"""Optional error tracking with Sentry (issue #24 item 3): on only when SENTRY_DSN is set.

Called from config/settings.py. The SDK's Django, Celery and Redis integrations switch on by
themselves when those libraries are installed, so unhandled errors of views, consumers' HTTP
side and tasks are reported. Nothing personal is sent by default (`send_default_pii` off: no
cookies, no user, no client address), and every event passes through the same secret redaction
as our logs before it leaves.
"""

from __future__ import annotations

from typing import Any

from config.redaction import redact


def _walk(value: Any, redact, depth: int = 0) -> Any:
    if depth > 30:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _walk(item, redact, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, redact, depth + 1) for item in value]
    return value


def event_redact(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's before_send: every string of the event with known secrets masked."""
    return _walk(event, redact)


def sentry_init(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> bool:
    """Start the SDK if a DSN is given; returns whether it did."""
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        before_send=event_redact,
    )
    return True

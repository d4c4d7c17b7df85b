"""Small HTTP helpers every outbound client shares (orders, the AI clients); Django-free."""

from __future__ import annotations

import email.utils
import time


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header value: a number of seconds (a float such as
    "2.0" too, as Shopify sends) or an HTTP date; None when absent or unreadable, never negative."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

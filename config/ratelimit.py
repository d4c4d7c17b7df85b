"""Redis-backed rate limits shared by every process (the `limits` library's moving window).

A hit over the limit raises ApiError 429 with Retry-After; REST renders it as the error
envelope, the WebSocket consumer as an error frame on an open connection.
"""

from __future__ import annotations

import math
import threading
import time

import redis
from django.conf import settings
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from config.client_address import client_address_of_request
from config.errors import ApiError, ErrorCode

_lock = threading.Lock()
_limiter: tuple[str, MovingWindowRateLimiter] | None = None


def _get_limiter() -> MovingWindowRateLimiter:
    global _limiter
    url = settings.REDIS_URL
    if _limiter is None or _limiter[0] != url:
        with _lock:
            if _limiter is None or _limiter[0] != url:
                # A blocking pool: under a burst a request waits briefly for a connection
                # instead of failing with MaxConnectionsError (bench/findings.md, item 4).
                pool = redis.BlockingConnectionPool.from_url(
                    url, max_connections=settings.RATE_LIMIT_REDIS_CONNECTIONS, timeout=5
                )
                storage = storage_from_string(url, key_prefix="cb:rl", connection_pool=pool)
                _limiter = (url, MovingWindowRateLimiter(storage))
    return _limiter[1]


def rate_limit_hit(*, scope: str, key: str, limit: str) -> None:
    """Count one hit for (scope, key) against `limit` (e.g. "60/minute"); 429 when over it."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    item = parse(limit)
    limiter = _get_limiter()
    if limiter.hit(item, scope, key):
        return
    stats = limiter.get_window_stats(item, scope, key)
    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
    raise ApiError(
        ErrorCode.RATE_LIMITED,
        f"Too many requests; try again in {retry_after} seconds.",
        details={"limit": limit, "retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def message_limit(chatbot_limit: int | None) -> str:
    return f"{chatbot_limit or settings.MESSAGE_RATE_LIMIT_PER_MINUTE}/minute"


def ip_of(request) -> str:
    """The client address a limit keys on (behind TRUSTED_PROXIES, the visitor's)."""
    return client_address_of_request(request) or "unknown"

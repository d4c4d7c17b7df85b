"""Process-wide Redis clients (sync and asyncio), built once from REDIS_URL."""

from __future__ import annotations

import threading

import redis
import redis.asyncio as aioredis
from django.conf import settings

_lock = threading.Lock()
_sync_client: redis.Redis | None = None


def get_redis() -> redis.Redis:
    """A thread-safe pooled client; reuse it rather than connecting per call."""
    global _sync_client
    if _sync_client is None:
        with _lock:
            if _sync_client is None:
                _sync_client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    socket_connect_timeout=2,
                    socket_timeout=5,
                    health_check_interval=30,
                    max_connections=500,
                )
    return _sync_client


def new_async_redis() -> aioredis.Redis:
    """An asyncio client; each event loop needs its own."""
    return aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)

"""Process-wide Redis clients (sync and asyncio), built once from REDIS_URL."""

from __future__ import annotations

import asyncio
import threading
import weakref

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


_async_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def loop_redis() -> aioredis.Redis:
    """The asyncio client of the running event loop (made on first use, gone with the loop):
    what an ASGI process's consumers and async views share."""
    loop = asyncio.get_running_loop()
    client = _async_by_loop.get(loop)
    if client is None:
        client = _async_by_loop[loop] = new_async_redis()
    return client

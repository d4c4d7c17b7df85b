"""Process-wide Redis clients (sync and asyncio), built once from REDIS_URL."""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}


def get_redis(url: str | None = None) -> redis.Redis:
    """A thread-safe pooled client of REDIS_URL (or of `url`: one of EVENT_REDIS_URLS); reuse
    it rather than connecting per call."""
    url = url or settings.REDIS_URL
    client = _sync_clients.get(url)
    if client is None:
        with _lock:
            client = _sync_clients.get(url)
            if client is None:
                client = _sync_clients[url] = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=2,
                    socket_timeout=5,
                    health_check_interval=30,
                    max_connections=500,
                )
    return client


def new_async_redis(url: str | None = None) -> aioredis.Redis:
    """An asyncio client; each event loop needs its own."""
    return aioredis.Redis.from_url(url or settings.REDIS_URL, socket_connect_timeout=2)


_async_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def loop_redis(url: str | None = None) -> aioredis.Redis:
    """The running event loop's asyncio client of REDIS_URL (or `url`), made on first use and
    gone with the loop: what an ASGI process's consumers and async views share."""
    url = url or settings.REDIS_URL
    clients = _async_by_loop.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        client = clients[url] = new_async_redis(url)
    return client

"""Pooled httpx clients for the AI services: one per kind of upstream per worker process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

from aiclients.transport import LeanTransport
from outbound import guard

USER_AGENT = "chatbot-backend/1.0"
# httpcore 1.0.x rescans every pooled connection, quadratically, whenever a request starts or
# ends (encode/httpcore#1035, unmerged). Measured here: 300 concurrent streams through one pool
# spent ~3 s of CPU on that bookkeeping; pools of <= 32 connections make it negligible.
SHARD_SIZE = 32


class _CountedStream(httpx.AsyncByteStream):
    """Response body that tells its shard when the connection is given back."""

    def __init__(self, inner: httpx.AsyncByteStream, release: _Release):
        self._inner = inner
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            yield part

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._release()


class _Release:
    def __init__(self, active: list[int], index: int):
        self._active = active
        self._index = index
        self._done = False

    def __call__(self) -> None:
        if not self._done:
            self._done = True
            self._active[self._index] -= 1


class ShardedTransport(httpx.AsyncBaseTransport):
    """Spreads requests over several small connection pools, least busy first.

    The total connection limit is split exactly across the shards, so `max_connections` still
    bounds the sockets; a request waits for a socket only when every shard is full.
    """

    def __init__(
        self, *, max_connections: int, keepalive_expiry: float, shard_size: int = SHARD_SIZE
    ):
        count = max(1, -(-max_connections // shard_size))
        sizes = [
            max_connections // count + (1 if i < max_connections % count else 0)
            for i in range(count)
        ]
        self._shards = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=keepalive_expiry,
                ),
                trust_env=False,
            )
            for size in sizes
        ]
        self._active = [0] * count  # requests in flight or queued, per shard

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Ties go to the lowest index, so a quiet worker keeps reusing the same warm sockets.
        index = min(range(len(self._shards)), key=self._active.__getitem__)
        self._active[index] += 1
        release = _Release(self._active, index)
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        response.stream = _CountedStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def make_async_client(
    *,
    max_connections: int,
    connect_timeout: float,
    read_timeout: float,
    pool_timeout: float | None = None,
    keepalive_expiry: float = 30.0,
    trust_env: bool = True,
    lean: bool = True,
    allow_private: Callable[[], bool] | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient whose pool holds at most `max_connections` sockets.

    A streaming answer holds its connection until the last token, so `max_connections` is the
    number of answers this process can stream at once; further calls wait for a free socket
    (reported as CallStats.pool_wait_seconds). `trust_env` only controls proxy variables.
    `lean=False` swaps the asyncio transport (transport.py) for httpx's own, sharded.
    Every new connection passes the address guard (outbound/guard.py) before the request is
    written: `allow_private` overrides the process's ALLOW_PRIVATE_NETWORK_URLS policy.
    """
    transport: httpx.AsyncBaseTransport
    if lean:
        transport = LeanTransport(
            max_connections=max_connections, keepalive_expiry=keepalive_expiry
        )
    else:
        transport = ShardedTransport(
            max_connections=max_connections, keepalive_expiry=keepalive_expiry
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=pool_timeout
        ),
        follow_redirects=False,  # a redirect would re-send the body and the key elsewhere
        trust_env=trust_env,
        headers={"User-Agent": USER_AGENT},
        event_hooks=guard.async_hooks(allow_private),
    )

"""What the client tests share: a call's collected outcome and running one call to its end.

The Flowise and OpenAI-compatible client tests had copied these lines; they live here once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from aiclients import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamError,
    UpstreamEvent,
    UpstreamRequest,
    make_async_client,
)

FAST = Timeouts(connect=1.0, read_idle=2.0, total=10.0)
QUICK_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05, retry_after_cap=5)


@dataclass
class Result:
    events: list[UpstreamEvent] = field(default_factory=list)
    stats: CallStats = field(default_factory=CallStats)
    error: UpstreamError | None = None
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if e.kind == "token")

    def of(self, kind: str) -> list[UpstreamEvent]:
        return [e for e in self.events if e.kind == kind]


async def result_fill(result: Result, events: AsyncGenerator[UpstreamEvent, None]) -> None:
    """Collect a call's events into `result`, and the UpstreamError it ended with, if any (the
    tests assert on errors, so one must not escape)."""
    try:
        async with aclosing(events) as stream:
            async for event in stream:
                result.events.append(event)
    except UpstreamError as exc:
        result.error = exc


def call_run(
    call: Callable[..., AsyncGenerator[UpstreamEvent, None]],
    req: UpstreamRequest,
    *,
    max_connections: int,
    timeouts: Timeouts = FAST,
    retry: RetryPolicy = QUICK_RETRY,
    **kw,
) -> Result:
    """Run one call of `call` (stream_flowise, stream_openai) on a fresh client, timed."""
    result = Result()

    async def main() -> None:
        async with make_async_client(
            max_connections=max_connections, connect_timeout=1, read_timeout=5, trust_env=False
        ) as client:
            events = call(client, req, stats=result.stats, timeouts=timeouts, retry=retry, **kw)
            await result_fill(result, events)

    started = time.monotonic()
    asyncio.run(main())
    result.elapsed = time.monotonic() - started
    return result

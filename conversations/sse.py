"""Server-Sent Events for a turn: `GET /api/stream-events/<turn>/sse` (docs/streaming.md).

Another adapter over the one reader of the event log (conversations.eventlog's sync door,
through selectors.stream_events_after, the page polling answers): subscribe to the turn's
channel-layer group first, replay the logged events after the client's last id, then forward
live frames, dropping ids already sent and reading any gap from the log. An async generator
served by Django's ASGI handler: an open stream holds no thread, only a queue; the reader
borrows a database thread for each page it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import StreamingHttpResponse

from config import request_threads
from config.errors import ApiError, ErrorCode
from conversations import selectors, streaming
from conversations.event_types import Event
from conversations.models import Turn

logger = logging.getLogger(__name__)

REPLAY_BATCH = 1000
HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies pass the stream through instead of buffering it.
    "X-Accel-Buffering": "no",
}


# Open streams per client address in this process. Each holds a Redis subscription and a queue
# for as long as its turn runs, so one address may hold at most SSE_MAX_STREAMS_PER_ADDRESS
# (per process, like WS_MAX_SOCKETS_PER_ADDRESS; config/socket_limits.py says why). Counted
# from inside the stream, so a response never started cannot leave a count behind; the check
# before it is therefore approximate by the streams starting at that moment.
open_streams: Counter[str] = Counter()


def stream_slot_check(address: str) -> None:
    cap = settings.SSE_MAX_STREAMS_PER_ADDRESS
    if cap and open_streams[address] >= cap:
        raise ApiError(
            ErrorCode.RATE_LIMITED,
            "Too many event streams open from this address; close some or poll instead.",
            headers={"Retry-After": "5"},
        )


def sse_frame(env: Event) -> str:
    """One event: `id:` is the event id (what EventSource sends back as Last-Event-ID),
    `event:` its kind, `data:` the whole envelope (json.dumps writes no newline)."""
    data = json.dumps(env, separators=(",", ":"))
    return f"id: {env['id']}\nevent: {env['event']}\ndata: {data}\n\n"


def _read_page(turn_id: str, after: int) -> dict[str, Any]:
    turn = Turn.objects.get(pk=turn_id)  # fresh: has_more depends on where the turn stands now
    return selectors.stream_events_after(turn=turn, after=after, limit=REPLAY_BATCH)


read_page = database_sync_to_async(_read_page, thread_sensitive=False)


async def _pump(layer, channel: str, live: asyncio.Queue) -> None:
    # The layer's receive() unsubscribes the channel when it is cancelled, so it is never
    # given a timeout; heartbeats time out on this queue instead.
    while True:
        live.put_nowait(await layer.receive(channel))


def _release_request_thread() -> None:
    """Let the request's thread go for as long as the stream runs.

    Django's ASGI handler runs each request's sync parts (the sync middleware, the DRF view) on
    a thread of its own and keeps it until the response ends: one idle thread per open stream
    (measured: 50 streams, +49 threads in Daphne). Nothing runs on it while the response
    streams, so it goes back to the kept request threads (config/request_threads.py) now.
    tests/e2e/test_sse_threads.py fails if that stops working."""
    request_threads.release_current()


async def turn_events(turn_id: str, after: int, address: str) -> AsyncIterator[str]:
    """Every event of the turn after `after`, in order, each once, ending after `end`."""
    _release_request_thread()
    open_streams[address] += 1
    try:
        async with contextlib.aclosing(_turn_events(turn_id, after)) as frames:
            async for frame in frames:
                yield frame
    finally:
        open_streams[address] -= 1
        if open_streams[address] <= 0:
            del open_streams[address]


async def _turn_events(turn_id: str, after: int) -> AsyncGenerator[str, None]:
    layer = get_channel_layer()
    group = streaming.turn_group(turn_id)
    channel = await layer.new_channel("sse.")
    live: asyncio.Queue = asyncio.Queue()
    pump = asyncio.ensure_future(_pump(layer, channel, live))
    next_id = after + 1
    try:
        # Subscribe first, then read the log: nothing published in between can be missed.
        await layer.group_add(group, channel)
        fill = True
        while True:
            if fill:
                page = await read_page(turn_id, next_id - 1)
                for env in page["events"]:
                    yield sse_frame(env)
                    next_id = env["id"] + 1
                    if env["event"] == streaming.TERMINAL_EVENT:
                        return
                if not page["has_more"]:
                    return
                fill = len(page["events"]) == REPLAY_BATCH
                if fill:
                    continue
            try:
                message = await asyncio.wait_for(live.get(), settings.SSE_HEARTBEAT_SECONDS)
            except TimeoutError:
                yield ": ping\n\n"
                # The bus delivers at most once: whatever it lost meanwhile is in the log.
                fill = True
                continue
            env = message.get("event") if isinstance(message, dict) else None
            if not isinstance(env, dict) or env.get("id", 0) < next_id:
                continue
            if env["id"] > next_id:
                fill = True  # a gap; the log has it (XADD runs before PUBLISH)
                continue
            # A layer message's event (streaming.layer_message), checked above as far as read.
            yield sse_frame(selectors.event_for_clients(cast(Event, env)))
            next_id += 1
            if env["event"] == streaming.TERMINAL_EVENT:
                return
    except asyncio.CancelledError:
        raise  # the client went away (Django cancels the response on http.disconnect)
    except Exception as exc:
        # Redis or PostgreSQL away mid-stream: end it; EventSource reconnects with
        # Last-Event-ID and gets the rest.
        logger.warning("sse: turn %s stream ended at event %s: %s", turn_id, next_id - 1, exc)
    finally:
        pump.cancel()
        with contextlib.suppress(Exception):
            await layer.group_discard(group, channel)


def turn_events_response(*, turn_id: str, after: int, address: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        turn_events(turn_id, after, address), content_type="text/event-stream; charset=utf-8"
    )
    for key, value in HEADERS.items():
        response[key] = value
    return response

"""Open-loop load client: WebSocket streams through the product, direct SSE streams from the
fake (the floor), and fixed-rate polling. Every frame is stamped with its id and receipt time.

Work starts at scheduled times whatever happened before (open loop), and latencies are taken
from the scheduled time, so a stalled server cannot hide its stall by slowing the client down.
Receipt times are CLOCK_MONOTONIC (time.monotonic), the clock the fake stamps emissions with.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import websockets

from aiclients.pool import make_async_client
from bench.stack import BOT_ID, BOT_ORIGIN, CHATFLOW_ID

mono = time.monotonic


def token_texts(count: int) -> list[str]:
    """The fake's answer: " t0", " t1", … so every received token says which one it is."""
    return [f" t{i}" for i in range(count)]


def parse_tokens(text: str) -> list[int]:
    return [int(word[1:]) for word in text.split()]


async def sleep_until(when: float) -> None:
    delay = when - mono()
    if delay > 0:
        await asyncio.sleep(delay)


def http_client(connections: int) -> httpx.AsyncClient:
    # The worker's own HTTP client (aiclients.pool): the floor and the load use the
    # same code as the relay, and httpcore's pool costs grow quadratically with connections.
    return make_async_client(
        max_connections=connections,
        connect_timeout=30,
        read_timeout=120,
        trust_env=False,
        allow_private=lambda: True,  # the load client talks to the stack on 127.0.0.1
    )


@dataclass(slots=True)
class Trace:
    """One stream as the client saw it."""

    index: int
    scheduled: float = 0.0
    session_id: str = ""
    conversation_token: str = ""
    chat_id: str = ""
    turn_id: str = ""
    post_sent_mono: float = 0.0
    post_sent_wall: float = 0.0
    post_done_mono: float = 0.0
    resume_sent_mono: float = 0.0
    # (receipt monotonic time, event id, event kind, token indices in the frame)
    frames: list[tuple[float, int, str, list[int]]] = field(default_factory=list)
    status: str = ""
    error: str = ""


# --- through the product -------------------------------------------------------------------------


class RelayClient:
    """Widget-like clients: a conversation and an open WebSocket each, then one message each."""

    def __init__(self, base_url: str, ws_url: str, widget_key: str, connections: int) -> None:
        self.base_url = base_url
        self.ws_url = ws_url
        self.headers = {"Origin": BOT_ORIGIN, "X-Widget-Key": widget_key}
        self.http = http_client(connections)
        self.sockets: dict[int, websockets.ClientConnection] = {}

    async def aclose(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets.values()), return_exceptions=True)
        await self.http.aclose()

    async def prepare(self, traces: list[Trace], parallel: int = 25) -> None:
        """Create each conversation and connect its socket (not measured)."""
        gate = asyncio.Semaphore(parallel)

        async def one(tr: Trace) -> None:
            async with gate:
                resp = await self.http.post(
                    f"{self.base_url}/api/sessions",
                    json={"chatbot_id": BOT_ID, "userId": f"bench-{tr.index}"},
                    headers=self.headers,
                )
                resp.raise_for_status()
                body = resp.json()
                tr.session_id = body["sessionId"]
                tr.conversation_token = body["conversation_token"]
                ws = await websockets.connect(
                    f"{self.ws_url}/ws/conversations/{tr.session_id}/"
                    f"?token={tr.conversation_token}",
                    origin=BOT_ORIGIN,
                    open_timeout=60,
                    ping_interval=None,
                    compression=None,
                    max_queue=4096,
                )
                ready = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if ready.get("type") != "ready":
                    raise RuntimeError(f"WebSocket not ready: {ready}")
                self.sockets[tr.index] = ws

        await asyncio.gather(*(one(tr) for tr in traces))

    async def stream(self, tr: Trace, timeout: float) -> None:
        ws = self.sockets[tr.index]
        await sleep_until(tr.scheduled)
        tr.post_sent_wall = time.time()
        tr.post_sent_mono = mono()
        try:
            resp = await self.http.post(
                f"{self.base_url}/api/process-message",
                json={
                    "chatbot_id": BOT_ID,
                    "message_text": f"benchmark question {tr.index}",
                    "session_id": tr.session_id,
                    "conversation_token": tr.conversation_token,
                },
                headers={
                    **self.headers,
                    # What a load balancer would add; kept for servers that read it.
                    "X-Request-Start": f"t={int(tr.post_sent_wall * 1e6)}",
                },
            )
        except httpx.HTTPError as exc:
            tr.error = f"POST failed: {exc!r}"
            return
        tr.post_done_mono = mono()
        if resp.status_code != 200:
            tr.error = f"POST {resp.status_code}: {resp.text[:200]}"
            return
        tr.turn_id = resp.json()["turn_id"]
        tr.resume_sent_mono = mono()
        await ws.send(json.dumps({"type": "resume", "turn_id": tr.turn_id, "last_event_id": 0}))
        frames = tr.frames
        try:
            async with asyncio.timeout(timeout):
                async for raw in ws:
                    now = mono()
                    msg = json.loads(raw)
                    kind = msg.get("type")
                    if kind != "event":
                        if kind == "error":
                            tr.error = f"error frame: {msg.get('error')}"
                        continue
                    event = msg["event"]
                    tokens = parse_tokens(msg["data"]["text"]) if event == "token" else []
                    frames.append((now, msg["id"], event, tokens))
                    if event == "end":
                        tr.status = msg["data"]["status"]
                        return
        except TimeoutError:
            tr.error = "no end event before the run's deadline"
        except websockets.ConnectionClosed as exc:
            tr.error = f"socket closed: {exc!r}"


# --- the floor: straight from the fake ------------------------------------------------------------


class FloorClient:
    """Reads the fake's SSE stream directly with the worker's HTTP client: the physical floor."""

    def __init__(self, fake_url: str, connections: int) -> None:
        self.fake_url = fake_url
        self.http = http_client(connections)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def stream(self, tr: Trace, timeout: float) -> None:
        await sleep_until(tr.scheduled)
        tr.chat_id = tr.session_id = str(uuid.uuid4())
        body = {
            "question": f"benchmark question {tr.index}",
            "streaming": True,
            "chatId": tr.chat_id,
            "overrideConfig": {"sessionId": tr.chat_id},
        }
        tr.post_sent_wall = time.time()
        tr.post_sent_mono = mono()
        frames = tr.frames
        try:
            async with asyncio.timeout(timeout):
                async with self.http.stream(
                    "POST", f"{self.fake_url}/api/v1/prediction/{CHATFLOW_ID}", json=body
                ) as resp:
                    tr.post_done_mono = tr.resume_sent_mono = mono()
                    buf = b""
                    seq = 0
                    async for chunk in resp.aiter_raw():
                        now = mono()
                        buf += chunk
                        *complete, buf = buf.split(b"\n\n")
                        tokens: list[int] = []
                        for raw in complete:
                            start = raw.find(b"data:")
                            if start < 0:
                                continue
                            obj = json.loads(raw[start + 5 :])
                            if obj["event"] == "token":
                                tokens.extend(parse_tokens(obj["data"]))
                            elif obj["event"] == "end":
                                tr.status = "completed"
                        if tokens:
                            seq += 1
                            frames.append((now, seq, "token", tokens))
        except TimeoutError:
            tr.error = "stream did not end before the run's deadline"
        except httpx.HTTPError as exc:
            tr.error = f"stream failed: {exc!r}"


# --- open-loop polling -------------------------------------------------------------------------


async def poll_open_loop(
    http: httpx.AsyncClient,
    *,
    rate: float,
    duration: float,
    start_at: float,
    request: Callable[[int], tuple[str, dict]],
    on_body: Callable[[int, dict], None] | None = None,
) -> list[tuple[float, float, int]]:
    """GETs at fixed times (start_at + k/rate); returns (scheduled, done, status) for each.

    Latency is done - scheduled: a request the client could only send late (because the
    server or the loop was busy) is charged for the wait, which is what a user would feel.
    """
    results: list[tuple[float, float, int]] = []

    async def one(k: int, scheduled: float) -> None:
        url, headers = request(k)
        status = 0
        try:
            resp = await http.get(url, headers=headers)
            status = resp.status_code
            if on_body is not None and status == 200:
                on_body(k, resp.json())
        except httpx.HTTPError:
            status = -1
        results.append((scheduled, mono(), status))

    tasks = []
    for k in range(int(rate * duration)):
        scheduled = start_at + k / rate
        await sleep_until(scheduled)
        tasks.append(asyncio.create_task(one(k, scheduled)))
    await asyncio.gather(*tasks)
    return results

"""Idle and slow clients cannot hold the server's connections (issue #18 item 4).

Before: WebSockets were accepted before any token check, never timed out and had no cap per
address (1,500 idle sockets from one client stayed open), and a request body trickled a byte
at a time was held indefinitely.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import websockets
from django.db import connection

from chatbots.tests.factories import create_chatbot
from tests.e2e.client import answer_text, post_message, ws_events
from tests.e2e.conftest import ARTIFACTS, running_stack, stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AUTH_TIMEOUT = 3
UNAUTHENTICATED_CAP = 20
OPEN_CAP = 30
HEADER_TIMEOUT = 3
BODY_TIMEOUT = 3
BODY_MIN_RATE = 500
# Slack for a loaded machine: what a deadline may overrun by before the test calls it broken.
SLACK = 20

# Each attack comes from its own loopback address (Linux routes all of 127/8 to lo), so the
# customer, on 127.0.0.1, is another address, as a real customer would be.
IDLE_ATTACKER = "127.0.0.2"
AUTHENTICATED_HOARDER = "127.0.0.3"


@pytest.fixture(scope="module")
def guarded_stack(django_db_setup, django_db_blocker):
    ARTIFACTS.mkdir(exist_ok=True)
    env = stack_env(
        BUILTIN_TOKENS_PER_SECOND="0",
        SESSION_CREATE_RATE_LIMIT="100000/minute",
        MESSAGE_RATE_LIMIT_PER_MINUTE="100000",
        WS_AUTH_TIMEOUT_SECONDS=str(AUTH_TIMEOUT),
        WS_MAX_UNAUTHENTICATED_PER_ADDRESS=str(UNAUTHENTICATED_CAP),
        WS_MAX_SOCKETS_PER_ADDRESS=str(OPEN_CAP),
        HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        HTTP_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        HTTP_BODY_MIN_BYTES_PER_SECOND=str(BODY_MIN_RATE),
    )
    with running_stack(env, ARTIFACTS, "idle", "turns,celery", 4) as running:
        yield running


def _port(stack) -> int:
    return int(stack.base_url.rsplit(":", 1)[1])


async def _idle_socket(url: str, outcome: list, opened: list, handshakes) -> None:
    """Open a socket from the attacker's address and never say anything."""
    try:
        async with handshakes:  # bounds the handshakes in flight, not the sockets held
            ws = await websockets.connect(url, open_timeout=30, local_addr=(IDLE_ATTACKER, 0))
    except websockets.InvalidStatus as refused:
        outcome.append(("refused", refused.response.status_code))
        return
    start = time.monotonic()
    opened.append(start)
    try:
        frame = json.loads(await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT + SLACK))
        await asyncio.wait_for(ws.recv(), SLACK)
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        outcome.append(("closed", code, frame["error"]["code"], time.monotonic() - start))
    except TimeoutError:
        outcome.append(("still open", time.monotonic() - start))
        await ws.close()


def test_a_thousand_idle_sockets_from_one_address_are_refused_or_closed_while_a_customer_chats(
    guarded_stack,
):
    bot = create_chatbot(public_id="idle-attack")
    url = f"{guarded_stack.ws_url}/ws/conversations/00000000-0000-0000-0000-000000000001/"

    def customer_message() -> dict:
        try:
            return post_message(guarded_stack.base_url, bot.public_id, "Hi")
        finally:
            connection.close()  # this thread's own; the test database is dropped at the end

    async def scenario():
        outcome: list = []
        opened: list = []
        handshakes = asyncio.Semaphore(50)
        started = time.monotonic()
        attack = asyncio.gather(
            *(_idle_socket(url, outcome, opened, handshakes) for _ in range(1000))
        )
        # The customer, from another address, chats while the attack goes on.
        await asyncio.sleep(0.5)
        reply = await asyncio.to_thread(customer_message)
        events = await ws_events(reply, timeout=60)
        customer_done = time.monotonic()
        await attack
        return outcome, opened, started, customer_done, events

    outcome, opened, started, customer_done, events = asyncio.run(scenario())
    attack_seconds = max(opened, default=started) - started

    assert events[-1]["event"] == "end" and answer_text(events)
    closed = [o for o in outcome if o[0] == "closed"]
    refused = [o for o in outcome if o[0] == "refused"]
    assert len(closed) + len(refused) == 1000, [o for o in outcome if o[0] == "still open"][:3]
    assert {o[1] for o in refused} == {403}
    # Every socket let in was closed for saying nothing, not before its time, nor long after.
    assert {(o[1], o[2]) for o in closed} == {(4401, "NOT_AUTHENTICATED")}
    # (Timed from when the client saw the socket open, which on a loaded machine can be a
    # while after the server accepted it and started its clock.)
    assert all(AUTH_TIMEOUT - 2 <= o[3] <= AUTH_TIMEOUT + SLACK for o in closed)
    # At most the cap at a time: each slot frees only after its socket's timeout.
    assert (
        UNAUTHENTICATED_CAP
        <= len(closed)
        <= UNAUTHENTICATED_CAP * (1 + attack_seconds / AUTH_TIMEOUT)
    )
    assert customer_done - started < 60


def test_a_socket_that_authenticates_by_message_in_time_stays_open(guarded_stack):
    bot = create_chatbot(public_id="auth-by-message")
    reply = post_message(guarded_stack.base_url, bot.public_id, "Hello")

    async def scenario():
        async with websockets.connect(reply["websocket_url"], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "auth", "token": reply["conversation_token"]}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await asyncio.sleep(AUTH_TIMEOUT + 1)
            await ws.send(json.dumps({"type": "ping"}))
            return ready, json.loads(await asyncio.wait_for(ws.recv(), 10))

    ready, pong = asyncio.run(scenario())
    assert ready["type"] == "ready"
    assert pong == {"type": "pong"}


def test_authenticated_sockets_past_the_per_address_cap_are_refused(guarded_stack):
    bot = create_chatbot(public_id="hoarder")
    reply = post_message(guarded_stack.base_url, bot.public_id, "Hello")
    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]

    async def scenario():
        held, refused = [], []
        for _ in range(OPEN_CAP + 10):
            try:
                ws = await websockets.connect(
                    url, open_timeout=10, local_addr=(AUTHENTICATED_HOARDER, 0)
                )
            except websockets.InvalidStatus as err:
                refused.append(err.response.status_code)
                continue
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            held.append(ws)
        # Another address is not affected, and a freed slot is usable again.
        async with websockets.connect(url, open_timeout=10) as other:
            other_ready = json.loads(await asyncio.wait_for(other.recv(), 10))
        await held.pop().close()
        await asyncio.sleep(0.5)
        again = await websockets.connect(
            url, open_timeout=10, local_addr=(AUTHENTICATED_HOARDER, 0)
        )
        again_ready = json.loads(await asyncio.wait_for(again.recv(), 10))
        for ws in [*held, again]:
            await ws.close()
        return len(held) + 1, refused, other_ready, again_ready

    held, refused, other_ready, again_ready = asyncio.run(scenario())
    assert held == OPEN_CAP
    assert refused == [403] * 10
    assert other_ready["type"] == "ready" and again_ready["type"] == "ready"


def _trickle(port: int, head: bytes, trickle: bytes, every: float, limit: float):
    """Send `head`, then `trickle` a byte every `every` seconds; what the server sent back,
    and when it closed, within `limit` seconds."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit)
    sock.settimeout(every)
    start = time.monotonic()
    received = b""
    try:
        sock.sendall(head)
        for byte in trickle:
            if time.monotonic() - start > limit:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    return received, time.monotonic() - start


def test_a_request_body_trickled_a_byte_at_a_time_is_dropped_after_the_body_timeout(
    guarded_stack,
):
    body = b'{"chatbot_id": "nobody", "message_text": "' + b"x" * 2000 + b'"}'
    head = (
        b"POST /api/process-message HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    received, seconds = _trickle(
        _port(guarded_stack), head, body, every=0.25, limit=BODY_TIMEOUT + SLACK
    )
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b'"REQUEST_TIMEOUT"' in received
    assert BODY_TIMEOUT - 0.5 <= seconds <= BODY_TIMEOUT + SLACK


def test_request_headers_trickled_a_byte_at_a_time_are_dropped_after_the_header_timeout(
    guarded_stack,
):
    head = b"GET /health HTTP/1.1\r\n"
    trickle = b"X-Padding: " + b"y" * 1000 + b"\r\n\r\n"
    received, seconds = _trickle(
        _port(guarded_stack), head, trickle, every=0.25, limit=HEADER_TIMEOUT + SLACK
    )
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert HEADER_TIMEOUT - 0.5 <= seconds <= HEADER_TIMEOUT + SLACK


def test_a_large_body_sent_slowly_but_steadily_is_read_to_its_end(guarded_stack):
    bot = create_chatbot(public_id="steady-upload")
    message = {"chatbot_id": bot.public_id, "message_text": "z" * 3900}
    body = json.dumps(message).encode() + b" " * 6000  # whitespace after JSON is still JSON
    head = (
        b"POST /api/process-message HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nX-Widget-Key: " + bot.widget_key.encode() + b"\r\n"
        b"Origin: https://shop.example\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    # 2 KB a second (four times the minimum rate) for five seconds: past BODY_TIMEOUT, but
    # every chunk earns more time than it took.
    with socket.create_connection(("127.0.0.1", _port(guarded_stack)), timeout=30) as sock:
        sock.sendall(head)
        start = time.monotonic()
        for offset in range(0, len(body), 2000):
            sock.sendall(body[offset : offset + 2000])
            time.sleep(1)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert time.monotonic() - start > BODY_TIMEOUT
    assert received.startswith(b"HTTP/1.1 200 "), received[:300]

"""Requests at the edges of the ASGI application, asked of real Daphne: a WebSocket on a path
no route serves, and HEAD on the health checks."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
import uuid

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from chatbots.tests.factories import create_chatbot
from monitoring.models import ErrorLog
from tests.e2e.client import post_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNKNOWN_PATHS = [
    "/ws/nope/",
    "/ws/conversations/not-a-uuid/",
    f"/ws/conversations/{uuid.uuid4()}/extra/",
    "/",
]


async def handshake_status(url: str) -> int:
    """The HTTP status the server answered the WebSocket handshake with."""
    try:
        async with websockets.connect(url, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def log_tail(path, start: int) -> str:
    return path.read_bytes()[start:].decode(errors="replace")


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_a_websocket_on_an_unknown_path_is_refused_at_the_handshake_without_a_server_error(
    stack, path
):
    logged_before = stack.daphne_log.stat().st_size
    status = asyncio.run(handshake_status(stack.ws_url + path))
    assert status == 403
    time.sleep(0.3)  # anything Daphne logs about it is written by now
    logged = log_tail(stack.daphne_log, logged_before)
    assert "Traceback" not in logged and " ERROR " not in logged, logged
    assert not ErrorLog.objects.exists()


def test_the_conversation_websocket_still_opens_beside_the_refusal(stack):
    bot = create_chatbot(public_id="edges", allowed_origins=["http://shop.example"])
    reply = post_message(stack.base_url, bot.public_id, "Hello")

    async def ready() -> dict:
        url = reply["websocket_url"] + "?token=" + urllib.parse.quote(reply["conversation_token"])
        async with websockets.connect(url, origin="http://shop.example", open_timeout=10) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(ready())["type"] == "ready"


def raw_request(stack, method: str, path: str) -> bytes:
    """Everything the server sends for one request, read until it closes the connection."""
    port = urllib.parse.urlsplit(stack.base_url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("path", ["/health", "/api/conversation-health"])
def test_head_on_a_health_check_answers_like_get_without_a_body(stack, path):
    got_head, _, got_body = raw_request(stack, "GET", path).partition(b"\r\n\r\n")
    head, _, body = raw_request(stack, "HEAD", path).partition(b"\r\n\r\n")
    get_status = got_head.split(b"\r\n")[0].split()[1]
    head_status = head.split(b"\r\n")[0].split()[1]
    assert head_status == get_status
    assert head_status in (b"200", b"503")
    assert json.loads(got_body)["status"] in ("healthy", "degraded")
    assert body == b""

"""Sessions over the real stack: the synchronous chat API and WebSocket rate limiting."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from chatbots.models import AIEndpoint
from chatbots.tests.factories import (
    create_chatbot,
    create_endpoint,
    create_entry,
    create_flow,
    create_kb,
)
from tests.e2e.client import poll_events, widget_headers
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def new_session(stack, chatbot_id: str) -> dict:
    response = httpx.post(
        f"{stack.base_url}/api/sessions",
        json={"chatbot_id": chatbot_id, "userId": "user_12345"},
        headers=widget_headers(chatbot_id),
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_chat_message_waits_for_the_answer(stack):
    bot = create_chatbot(public_id="sync-bot", with_main_flow=False)
    kb = create_kb(chatbot=bot)
    create_entry(knowledge_base=kb, title="Opening hours", text="We are open 9 to 17.")
    create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)
    session = new_session(stack, "sync-bot")
    response = httpx.post(
        f"{stack.base_url}/api/chat/message",
        json={"message": "When are you open?", "type": "text"},
        headers={
            "X-Session-ID": session["sessionId"],
            "Authorization": f"Bearer {session['conversation_token']}",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"]["content"] == "When are you open?"
    assert body["message"]["direction"] == "incoming"
    assert "We are open 9 to 17." in body["response"]["content"]
    assert body["response"]["direction"] == "outgoing"
    assert body["agent"]["type"] == "main" and body["agent"]["agentsInvolved"] == ["main"]


def test_chat_message_returns_the_turn_id_when_the_answer_takes_too_long(stack):
    with FakeFlowise() as flowise:
        bot = create_chatbot(public_id="slow-bot", with_main_flow=False)
        endpoint = create_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url)
        create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        # The stack waits CHAT_SYNC_TIMEOUT_SECONDS=5 for an answer; this one takes longer.
        flowise.scenario.delay_before_first_token = 7
        session = new_session(stack, "slow-bot")
        auth = {
            "X-Session-ID": session["sessionId"],
            "Authorization": f"Bearer {session['conversation_token']}",
        }
        response = httpx.post(
            f"{stack.base_url}/api/chat/message",
            json={"message": "hello"},
            headers=auth,
            timeout=30,
        )
        assert response.status_code == 202
        body = response.json()
        assert body["status"] in ("pending", "running")
        events = poll_events(
            stack.base_url,
            {"turn_id": body["turn_id"], "conversation_token": session["conversation_token"]},
        )
        assert events[-1]["data"]["status"] == "completed"


def test_websocket_messages_over_the_limit_get_an_error_frame_and_the_socket_stays_open(stack):
    from chatbots.models import Chatbot

    bot = create_chatbot(public_id="ws-limit", message_rate_limit=2)
    Chatbot.objects.filter(pk=bot.pk).update(message_rate_limit=2)
    session = new_session(stack, "ws-limit")
    url = f"{stack.ws_url}/ws/conversations/{session['sessionId']}/?token={session['conversation_token']}"

    async def scenario():
        frames = []
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            for i in range(3):
                await ws.send(json.dumps({"type": "message", "message_text": f"m{i}"}))
            while len([f for f in frames if f.get("type") in ("turn", "error")]) < 3:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
            await ws.send(json.dumps({"type": "ping"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if frame["type"] == "pong":
                    break
        return frames

    frames = asyncio.run(scenario())
    kinds = [f["type"] for f in frames if f.get("type") in ("turn", "error")]
    assert kinds.count("turn") == 2
    error = next(f for f in frames if f["type"] == "error")
    assert error["error"]["code"] == "RATE_LIMITED"
    assert error["error"]["details"]["retry_after"] >= 1


def test_a_websocket_message_resent_with_its_idempotency_key_is_one_turn(stack):
    """A widget that lost its socket after sending re-sends with the same key: one message, one
    turn, and the reply names the original turn."""
    from conversations.models import Message, Turn

    create_chatbot(public_id="ws-idem")
    session = new_session(stack, "ws-idem")
    url = f"{stack.ws_url}/ws/conversations/{session['sessionId']}/?token={session['conversation_token']}"

    async def send_once(key: str) -> dict:
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            frame = {
                "type": "message",
                "message_text": "Where is my parcel?",
                "idempotency_key": key,
            }
            await ws.send(json.dumps(frame))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if reply["type"] in ("turn", "error"):
                    return reply

    first = asyncio.run(send_once("k-1"))
    again = asyncio.run(send_once("k-1"))
    other = asyncio.run(send_once("k-2"))
    assert first["type"] == again["type"] == other["type"] == "turn"
    assert again["turn_id"] == first["turn_id"] and again["message_id"] == first["message_id"]
    assert other["turn_id"] != first["turn_id"]
    assert (first["replayed"], again["replayed"], other["replayed"]) == (False, True, False)
    conversation_id = session["sessionId"]
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 2
    assert Message.objects.filter(conversation_id=conversation_id, role="user").count() == 2


@pytest.mark.parametrize(
    ("who", "origin", "close_code"),
    [
        ("owner", "https://shop.example", None),
        ("owner", None, None),
        ("owner", "https://evil.example", 4403),
        ("other visitor", "https://shop.example", 4404),
        ("forged", None, 4404),
    ],
)
def test_websocket_checks_the_token_and_the_browser_origin(stack, who, origin, close_code):
    create_chatbot(public_id="ws-guard")
    mine = new_session(stack, "ws-guard")
    theirs = new_session(stack, "ws-guard")
    token = {
        "owner": mine["conversation_token"],
        "other visitor": theirs["conversation_token"],
        "forged": mine["conversation_token"][:-2] + "xx",
    }[who]
    url = f"{stack.ws_url}/ws/conversations/{mine['sessionId']}/?token={token}"

    async def connect():
        async with websockets.connect(url, origin=origin) as ws:
            first = json.loads(await ws.recv())
            if first["type"] == "ready":
                return None, first
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code, first
            return "open", first

    code, first = asyncio.run(connect())
    assert code == close_code, first
    if close_code:
        assert first["type"] == "error"


def test_cors_preflight_allows_only_chatbot_origins(stack):
    create_chatbot(public_id="cors-bot", allowed_origins=["https://wine.example"])
    ok = httpx.options(
        f"{stack.base_url}/api/process-message",
        headers={
            "Origin": "https://wine.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-widget-key",
        },
    )
    assert ok.headers.get("access-control-allow-origin") == "https://wine.example"
    assert "x-widget-key" in ok.headers.get("access-control-allow-headers", "")
    denied = httpx.options(
        f"{stack.base_url}/api/process-message",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in denied.headers

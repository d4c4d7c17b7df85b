"""End to end: a turn that really failed in the worker is in the transcript with the error the
customer saw live — over REST history, resume and the WebSocket `history` message."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from tests.e2e.client import post_message, widget_headers, ws_events
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def ws_history(reply: dict, origin: str) -> list[dict]:
    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
    async with websockets.connect(url, origin=origin, open_timeout=10) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        await ws.send(json.dumps({"type": "history", "limit": 10}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "chat:history":
                return frame["messages"]


def test_a_failed_turn_is_in_every_history_with_the_error_the_customer_saw(stack):
    with FakeFlowise() as flowise:
        flowise.scenario.status = 401  # the AI service refuses our key: nothing is said
        bot = create_chatbot(public_id="history-e2e", with_main_flow=False)
        endpoint = create_endpoint(
            kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url, read_timeout=5.0, total_timeout=20
        )
        create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        reply = post_message(stack.base_url, bot.public_id, "Do you have Barolo?")
        events = asyncio.run(ws_events(reply))
    live_error = next(e["data"] for e in events if e.get("event") == "error")
    assert events[-1]["data"]["status"] == "failed"
    expected = {
        "turn_id": reply["turn_id"],
        "status": "failed",
        "answer_message_id": None,
        "error": {"code": live_error["code"], "message": live_error["message"]},
    }

    headers = {"Authorization": f"Bearer {reply['conversation_token']}"}
    session = f"{stack.base_url}/api/sessions/{reply['session_id']}"
    history = httpx.get(f"{session}/history", headers=headers, timeout=10).json()["messages"]
    resumed = httpx.post(f"{session}/resume", headers=headers, timeout=10).json()["history"]
    over_ws = asyncio.run(ws_history(reply, widget_headers(bot.public_id)["Origin"]))
    for messages in (history, resumed, over_ws):
        assert [m["content"] for m in messages] == ["Do you have Barolo?"]
        assert messages[0]["turn"] == expected

"""A switched-off chatbot over real Daphne's WebSocket: an existing token gets an error frame
CHATBOT_INACTIVE and close 4403, and a socket opened before the switch-off is refused its next
message, history, resume and cancel (#18 item 5)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from chatbots.tests.factories import create_chatbot
from conversations.models import Turn
from tests.e2e.client import post_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def until(ws, kind: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if frame.get("type") == kind:
            return frame


def test_a_switched_off_chatbot_refuses_existing_tokens_on_the_websocket(stack):
    bot = create_chatbot(public_id="ws-closing", allowed_origins=["http://shop.example"])
    reply = post_message(stack.base_url, bot.public_id, "Hello")
    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]

    def switch_off():
        # As staff do it (the admin saves the bot): the save drops the bot's cached records.
        bot.active = False
        bot.save(update_fields=["active"])

    async def scenario():
        async with websockets.connect(url, open_timeout=10) as early:
            await until(early, "ready")
            await asyncio.to_thread(switch_off)
            await early.send(json.dumps({"type": "message", "message_text": "Still there?"}))
            refused_message = await until(early, "error")
            # Reads of the open socket are refused too, as on REST.
            refused_reads = []
            for frame in (
                {"type": "history"},
                {"type": "resume", "turn_id": reply["turn_id"], "last_event_id": 0},
                {"type": "cancel", "turn_id": reply["turn_id"]},
            ):
                await early.send(json.dumps(frame))
                refused_reads.append((await until(early, "error"))["error"]["code"])
            await early.send(json.dumps({"type": "ping"}))
            await until(early, "pong")  # the socket itself stays usable
        async with websockets.connect(url, open_timeout=10) as late:
            refused_connect = json.loads(await asyncio.wait_for(late.recv(), 10))
            try:
                await asyncio.wait_for(late.recv(), 10)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
        return refused_message, refused_reads, refused_connect, code

    refused_message, refused_reads, refused_connect, code = asyncio.run(scenario())
    assert refused_message["error"]["code"] == "CHATBOT_INACTIVE"
    assert refused_reads == ["CHATBOT_INACTIVE"] * 3
    assert refused_connect["type"] == "error"
    assert refused_connect["error"]["code"] == "CHATBOT_INACTIVE"
    assert code == 4403
    assert Turn.objects.filter(conversation_id=reply["session_id"]).count() == 1

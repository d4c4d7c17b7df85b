"""A JWT on the plain WebSocket (#22 item 3): an API user of the conversation's chatbot is let in
like the visitor's own token; another bot's API user and a forged JWT get close 4404, as before."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import RefreshToken

from chatbots.tests.factories import create_chatbot
from conversations.services import conversation_start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def jwt_for(username: str, *bots) -> str:
    user = User.objects.create_user(username, password="pw-123456789")
    user.api_chatbots.add(*bots)
    return str(RefreshToken.for_user(user).access_token)


async def first_frames(url: str) -> tuple[list[dict], int | None]:
    frames: list[dict] = []
    async with websockets.connect(url, open_timeout=10) as ws:
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                frames.append(frame)
                if frame.get("type") == "ready":
                    await ws.send(json.dumps({"type": "history"}))
                if frame.get("type") == "chat:history":
                    return frames, None
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None


def test_an_api_user_of_the_bot_follows_the_conversation_with_its_jwt(stack):
    bot = create_chatbot(public_id="ws-jwt")
    other_bot = create_chatbot(public_id="ws-jwt-other")
    conversation = conversation_start(chatbot=bot, user_id="anna")
    url = f"{stack.ws_url}/ws/conversations/{conversation.pk}/?token="

    frames, code = asyncio.run(first_frames(url + jwt_for("ws-jwt-server", bot)))
    assert code is None
    assert frames[0] == {"type": "ready", "session_id": str(conversation.pk)}

    outsider = jwt_for("ws-jwt-outsider", other_bot)
    forged = outsider[:-4] + ("AAAA" if not outsider.endswith("AAAA") else "BBBB")
    for token in (outsider, forged):
        frames, code = asyncio.run(first_frames(url + token))
        assert code == 4404
        assert frames == [
            {
                "type": "error",
                "error": {
                    "code": "CONVERSATION_NOT_FOUND",
                    "message": "No conversation with this id for the token given.",
                    "details": {},
                },
            }
        ]

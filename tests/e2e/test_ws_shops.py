"""The WebSocket in the persona matrix (docs/access.md): with a JWT, a conversation's socket
opens for its chatbot's API users, its shop's agents and up, and operators; a viewer (who only
reads), another shop's staff and a staff user of no shop get close 4404, like an unknown id."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Membership, Role
from chatbots.tests.factories import create_chatbot, create_shop
from conversations.services import conversation_start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXPECTED = {
    "owner of a": None,
    "agent of a": None,
    "viewer of a": 4404,
    "owner of b": 4404,
    "staff of no shop": 4404,
    "api user of a": None,
    "operator": None,
}


async def close_code(url: str) -> int | None:
    """None when the socket opened and said it is ready; else the close code."""
    async with websockets.connect(url, open_timeout=10) as ws:
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("type") == "ready":
                    return None
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def test_each_persona_gets_exactly_its_socket(stack):
    a, b = create_shop(slug="ws-a"), create_shop(slug="ws-b")
    bot = create_chatbot(shop=a, public_id="ws-shops-a")
    create_chatbot(shop=b, public_id="ws-shops-b")
    conversation = conversation_start(chatbot=bot, user_id="anna")
    users = {}
    for persona, shop, role in (
        ("owner of a", a, Role.OWNER),
        ("agent of a", a, Role.AGENT),
        ("viewer of a", a, Role.VIEWER),
        ("owner of b", b, Role.OWNER),
    ):
        users[persona] = User.objects.create_user(persona.replace(" ", "-"), is_staff=True)
        Membership.objects.create(user=users[persona], shop=shop, role=role)
    users["staff of no shop"] = User.objects.create_user("no-shop", is_staff=True)
    users["api user of a"] = User.objects.create_user("api-a")
    bot.api_users.add(users["api user of a"])
    users["operator"] = User.objects.create_superuser("root", password="pw-123456789")

    url = f"{stack.ws_url}/ws/conversations/{conversation.pk}/?token="
    got = {
        persona: asyncio.run(close_code(url + str(RefreshToken.for_user(user).access_token)))
        for persona, user in users.items()
    }
    assert got == EXPECTED

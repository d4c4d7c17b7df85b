"""The live inbox on the real stack (Daphne + worker): the staff socket's personas, a takeover
seen live by the shop's agent and never by another shop's, no AI call while a person answers,
and a customer who reconnects mid-conversation getting every agent message exactly once."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Membership, Role
from chatbots.tests.factories import create_chatbot, create_shop
from conversations.models import AICall, Conversation, Turn
from inbox import services
from tests.e2e.client import assert_gapless, poll_events, post_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ALWAYS_OPEN = {d: [["00:00", "23:59"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
TIMEOUT = 20


def member(name: str, shop, role: str) -> User:
    user = User.objects.create_user(name, is_staff=True, first_name=name.split("-")[0].title())
    Membership.objects.create(user=user, shop=shop, role=role)
    return user


def cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def inbox_socket(stack, session: str | None, *, origin: str | None = None):
    """The inbox page's socket with a session cookie (from `cookie`, made before the loop)."""
    headers = {"Origin": origin or stack.base_url}
    if session is not None:
        headers["Cookie"] = session
    return await websockets.connect(
        f"{stack.ws_url}/ws/inbox/", additional_headers=headers, open_timeout=10
    )


async def next_of(ws, kind: str, **match) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
            return frame


async def outcome(stack, session, origin=None) -> str | int:
    ws = await inbox_socket(stack, session, origin=origin)
    try:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if frame["type"] == "ready":
            return "ready"
        await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code
    finally:
        await ws.close()
    return "?"


def test_the_staff_socket_opens_for_members_only_and_only_from_the_admins_origin(stack):
    a, b = create_shop(slug="inbox-a"), create_shop(slug="inbox-b")
    users = {
        "agent of a": cookie(member("agent-a", a, Role.AGENT)),
        "viewer of a": cookie(member("viewer-a", a, Role.VIEWER)),
        "owner of b": cookie(member("owner-b", b, Role.OWNER)),
    }
    nobody = cookie(User.objects.create_user("no-shop", is_staff=True))

    async def run():
        got = {name: await outcome(stack, user) for name, user in users.items()}
        got["staff of no shop"] = await outcome(stack, nobody)
        got["anonymous"] = await outcome(stack, None)
        got["agent from another site"] = await outcome(
            stack, users["agent of a"], origin="https://evil.example"
        )
        return got

    assert asyncio.run(run()) == {
        "agent of a": "ready",
        "viewer of a": "ready",
        "owner of b": "ready",
        "staff of no shop": 4403,
        "anonymous": 4401,
        "agent from another site": 4403,
    }


def test_a_takeover_reaches_the_agent_live_and_the_customer_in_order_without_any_ai_call(stack):
    a, b = create_shop(slug="live-a"), create_shop(slug="live-b")
    create_chatbot(shop=a, public_id="inbox-live", opening_hours=ALWAYS_OPEN)
    agent = member("anna-a", a, Role.AGENT)
    other = member("otto-b", b, Role.OWNER)
    first = post_message(stack.base_url, "inbox-live", "Hello")
    poll_events(stack.base_url, first)  # the bot answered the first message
    calls_before = AICall.objects.count()
    auth = {"Authorization": f"Bearer {first['conversation_token']}"}
    session = first["session_id"]

    agent_session, other_session = cookie(agent), cookie(other)
    operator_session = cookie(User.objects.create_superuser("operator-live", "op@example.com"))

    async def run():
        staff = await inbox_socket(stack, agent_session)
        outsider = await inbox_socket(stack, other_session)
        operator = await inbox_socket(stack, operator_session)
        for ws in (staff, outsider, operator):
            await next_of(ws, "ready")
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
            asked = await http.post(f"/api/sessions/{session}/person", json={}, headers=auth)
        assert asked.status_code == 200 and asked.json()["mode"] == "live", asked.text
        human = asked.json()["turn_id"]
        changed = await next_of(staff, "changed", conversation_id=session)
        assert changed["counts"]["waiting"] == 1
        # An operator sees every shop's requests.
        assert (await next_of(operator, "changed", conversation_id=session))["change"] == "waiting"
        await operator.close()
        # Another shop's owner hears nothing of it (the nudge went to shop a's group only).
        await outsider.send(json.dumps({"type": "ping"}))
        while (frame := json.loads(await asyncio.wait_for(outsider.recv(), TIMEOUT)))[
            "type"
        ] != "pong":
            assert frame["type"] != "changed", frame

        await staff.send(json.dumps({"type": "open", "conversation_id": session}))
        url = f"{first['websocket_url']}?token={first['conversation_token']}"
        customer = await websockets.connect(url, open_timeout=10)
        await next_of(customer, "ready")
        await customer.send(json.dumps({"type": "resume", "turn_id": human, "last_event_id": 0}))
        await asyncio.to_thread(services.conversation_take, conversation_id=session, agent=agent)
        await asyncio.to_thread(
            services.agent_reply, conversation_id=session, agent=agent, text="Hi, Anna here."
        )
        seen = [await next_of(customer, "event") for _ in range(4)]
        assert [e["event"] for e in seen] == [
            "start",
            "agent_waiting",
            "agent_joined",
            "agent_message",
        ]
        assert seen[2]["data"]["agent"] == {"name": "Anna"}

        await customer.send(json.dumps({"type": "message", "message_text": "Where is it?"}))
        accepted = await next_of(customer, "turn")
        assert accepted["turn_id"] == human
        heard = await next_of(staff, "event", event="customer_message")
        assert heard["data"]["text"] == "Where is it?"

        # The customer drops; the agent writes twice; the customer resumes from the last id.
        last_id = (await next_of(customer, "event", event="customer_message"))["id"]
        await customer.close()
        for text in ("Checking…", "It ships today."):
            await asyncio.to_thread(
                services.agent_reply, conversation_id=session, agent=agent, text=text
            )
        customer = await websockets.connect(url, open_timeout=10)
        await next_of(customer, "ready")
        await customer.send(
            json.dumps({"type": "resume", "turn_id": human, "last_event_id": last_id})
        )
        await asyncio.to_thread(
            services.conversation_hand_back, conversation_id=session, agent=agent
        )
        rest = []
        while not rest or rest[-1]["event"] != "end":
            rest.append(await next_of(customer, "event"))
        assert_gapless(rest, start=last_id + 1)
        assert [(e["event"], e["data"].get("text")) for e in rest] == [
            ("agent_message", "Checking…"),
            ("agent_message", "It ships today."),
            ("agent_left", None),
            ("end", None),
        ]
        await customer.close()
        await staff.close()
        await outsider.close()
        return human

    human = asyncio.run(run())
    assert AICall.objects.count() == calls_before  # no AI call while a person answered
    assert Turn.objects.get(pk=human).status == Turn.Status.COMPLETED
    assert Conversation.objects.get(pk=session).handling == "bot"
    again = post_message(
        stack.base_url,
        "inbox-live",
        "And gift cards?",
        session_id=session,
        headers={"Authorization": f"Bearer {first['conversation_token']}"},
    )
    assert again["turn_id"] != human
    events = poll_events(stack.base_url, again)
    assert events[-1]["data"]["status"] == "completed"  # the bot answers again


HOSTILE_FRAMES = [
    "not json",
    "[1, 2]",
    '{"type": "open", "conversation_id": "not-a-uuid"}',
    '{"type": "open", "conversation_id": "00000000-0000-0000-0000-000000000000"}',
    '{"type": "open", "conversation_id": "a\\u0000b"}',
    '{"type": "typing", "conversation_id": "\\ud800", "typing": true}',
    '{"type": "open", "conversation_id": "00000000-0000-0000-0000-000000000000", '
    '"last_event_id": 1e400}',
    '{"type": "explode"}',
    "[" * 5000 + "]" * 5000,
]


def test_hostile_frames_on_the_staff_socket_get_error_frames_and_the_socket_stays(stack):
    session = cookie(member("hostile-a", create_shop(slug="hostile-a"), Role.AGENT))

    async def run() -> list[str]:
        ws = await inbox_socket(stack, session)
        await next_of(ws, "ready")
        codes = []
        for frame in HOSTILE_FRAMES:
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert reply["type"] == "error", (frame[:60], reply)
            codes.append(reply["error"]["code"])
        await ws.send(json.dumps({"type": "ping"}))
        await next_of(ws, "pong")
        await ws.close()
        return codes

    codes = asyncio.run(run())
    assert len(codes) == len(HOSTILE_FRAMES)
    assert "INTERNAL_ERROR" not in codes

"""End to end: order tracking in a real turn and a helpdesk ticket from the real worker.

A Flowise router (the fake) answers `order`; the order flow is builtin, so the answer is our
templated one and contains the tracking number. Every platform's fake is tried.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import Turn
from helpdesk.models import Handoff, HelpdeskConnection
from orders.tests.platforms import EMAIL, PLATFORMS, TRACKING
from tests.e2e.client import answer_text, assert_gapless, post_message, ws_events
from tests.fakes.flowise import FakeFlowise
from tests.fakes.freshdesk import FakeFreshdesk

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ALWAYS_OPEN = {
    day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


@pytest.fixture
def router():
    with FakeFlowise(answer="order") as server:
        yield server


def order_bot(public_id: str, router: FakeFlowise, platform, fake):
    bot = create_chatbot(
        public_id=public_id, with_main_flow=False, language="en", opening_hours=ALWAYS_OPEN
    )
    builtin = create_endpoint(kind=AIEndpoint.Kind.BUILTIN)
    flowise = create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE,
        base_url=router.url,
        api_key="fw-key-0123456789",
        read_timeout=5.0,
        total_timeout=20,
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=builtin)
    create_flow(chatbot=bot, name="router", role="router", endpoint=flowise)
    create_flow(chatbot=bot, name="orders", routing_key="order", endpoint=builtin)
    platform.make_source(fake, bot)
    return bot


def ask(stack, public_id: str, text: str) -> tuple[dict, list[dict]]:
    reply = post_message(stack.base_url, public_id, text)
    events = asyncio.run(ws_events(reply))
    assert_gapless(events)
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed", events
    return reply, events


@pytest.mark.parametrize("kind", sorted(PLATFORMS))
def test_where_is_my_order_streams_the_tracking_number_from_each_platform(stack, router, kind):
    platform = PLATFORMS[kind]
    with platform.fake() as fake:
        platform.add_order(fake, EMAIL)
        public_id = f"orders-{kind.replace('_', '-')}"
        order_bot(public_id, router, platform, fake)

        reply, events = ask(
            stack, public_id, f"where is my order {platform.typed_number}, my email is {EMAIL}"
        )
        _, wrong = ask(
            stack, public_id, f"where is my order {platform.typed_number}, my email is x@y.dk"
        )

    metadata = next(e for e in events if e["event"] == "metadata")
    assert metadata["data"]["flow"] == "orders" and metadata["data"]["route"] == "order"
    [order] = [e["data"] for e in events if e["event"] == "order"]
    assert order["shipments"][0]["tracking_number"] == TRACKING
    assert EMAIL not in json.dumps(order) and "Jensen" not in json.dumps(order)
    text = answer_text(events)
    assert TRACKING in text and "Track the parcel here: https://" in text
    turn = Turn.objects.select_related("assistant_message").get(pk=reply["turn_id"])
    assert turn.assistant_message.content == text
    assert turn.timings["order_lookup_ms"] >= 0
    assert events[-1]["data"]["timings"]["order_lookup_ms"] >= 0

    # The same number with someone else's email: the not-found answer and no order data at all.
    assert [e["data"] for e in wrong if e["event"] == "order"] == [{"status": "not_found"}]
    assert "couldn't find an order" in answer_text(wrong)
    dumped = json.dumps(wrong)
    assert TRACKING not in dumped and "shipments" not in dumped and "line_items" not in dumped


def test_handoff_becomes_a_freshdesk_ticket_created_by_the_worker(stack, router):
    platform = PLATFORMS["shopify"]
    with platform.fake() as shop, FakeFreshdesk() as freshdesk:
        platform.add_order(shop, EMAIL)
        bot = order_bot("handoff-e2e", router, platform, shop)
        HelpdeskConnection.objects.create(
            chatbot=bot, domain=freshdesk.url, api_key=freshdesk.scenario.api_key
        )
        reply, _ = ask(stack, "handoff-e2e", f"where is my order 1001, my email is {EMAIL}")
        headers = {"Authorization": f"Bearer {reply['conversation_token']}"}
        base = f"{stack.base_url}/api/sessions/{reply['session_id']}"

        support = httpx.get(f"{base}/support", headers=headers, timeout=10).json()
        response = httpx.post(
            f"{base}/handoff",
            json={"reason": "The parcel is late", "email": EMAIL},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 202, response.text
        handoff_id = response.json()["handoff_id"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            handoff = Handoff.objects.get(pk=handoff_id)
            if handoff.state != "pending":
                break
            time.sleep(0.1)
        tickets = list(freshdesk.tickets)

    assert support["offer"] == "live" and support["open_now"] is True
    assert response.json()["mode"] == "live"
    assert handoff.state == "created", handoff.error
    [ticket] = tickets
    assert ticket["email"] == EMAIL and ticket["source"] == 7
    assert "The parcel is late" in ticket["description"]
    assert "where is my order 1001" in ticket["description"]  # the transcript
    assert TRACKING in ticket["description"]  # the bot's answer is in it too
    assert handoff.ticket_id == str(ticket["id"])

"""The orders context provider inside a turn: when it acts, what it sends, what it answers."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from chatbots.models import AIEndpoint, Flow
from chatbots.selectors import chatbot_config_get
from conversations.hooks import TurnContext, context_providers
from orders.services import order_context_provide
from orders.tests.platforms import EMAIL, PLATFORMS, TRACKING
from tests.fakes.shopify import FakeShopify, shopify_order


@pytest.fixture
def shop():
    with FakeShopify() as fake:
        fake.orders.append(shopify_order(name="#1001", email=EMAIL))
        yield fake


def order_bot(
    make_chatbot,
    make_flow,
    make_endpoint,
    fake,
    *,
    language="en",
    kind="builtin",
    platform="shopify",
    **source,
):
    bot = make_chatbot(language=language, contact_email="help@shop.example")
    endpoint = (
        make_endpoint(kind=kind)
        if kind == "builtin"
        else make_endpoint(kind=AIEndpoint.Kind.OPENAI)
    )
    make_flow(chatbot=bot, name="orders", routing_key="order", endpoint=endpoint)
    PLATFORMS[platform].make_source(fake, bot, **source)
    return bot


def run_provider(
    bot, question, *, flow_name="orders", extracted=None, history=None, conversation_id=None
):
    config = chatbot_config_get(public_id=bot.public_id)
    flow = next(f for f in config["flows"] if f["name"] == flow_name)
    events: list[tuple[str, dict]] = []

    async def emit(kind, data):
        events.append((kind, data))

    async def run_db(fn, *args, **kwargs):
        return await sync_to_async(fn)(*args, **kwargs)

    ctx = TurnContext(
        turn_id=str(uuid.uuid4()),
        conversation_id=conversation_id or str(uuid.uuid4()),
        config=config,
        flow=flow,
        question=question,
        extracted=extracted,
        message_metadata={},
        history=history or [],
        language=config["language"],
        emit=emit,
        run_db=run_db,
        timings={},
    )
    async_to_sync(order_context_provide)(ctx)
    return ctx, events


def test_the_provider_is_registered_with_the_turn_runner():
    assert "orders" in [name for name, _ in context_providers()]


def test_a_verified_order_becomes_an_event_and_a_templated_answer(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)

    ctx, events = run_provider(bot, "Where is my order 1001? My email is anna@example.com")

    assert [kind for kind, _ in events] == ["order"]
    order = events[0][1]
    assert order["order_number"] == "#1001" and order["status"] == "shipped"
    assert TRACKING in ctx.final_answer
    assert "https://gls-group.eu/track/123456789" in ctx.final_answer
    assert ctx.final_answer.startswith("Order #1001: it has been shipped.")
    assert json.loads(ctx.variables["order"]) == order
    assert TRACKING in "".join(ctx.context_parts)
    assert "order_lookup_ms" in ctx.timings
    assert ctx.metadata["order_lookup"] == {"outcome": "found", "source": "shopify"}


def test_an_ai_answer_flow_gets_the_order_as_context_and_answers_itself(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop, kind="openai")

    ctx, events = run_provider(bot, "order 1001, anna@example.com")

    assert ctx.final_answer is None
    assert events[0][1]["shipments"][0]["tracking_number"] == TRACKING
    assert "verified" in ctx.context_parts[0] and TRACKING in ctx.context_parts[0]


def test_the_answer_is_in_danish_for_a_danish_bot(make_chatbot, make_flow, make_endpoint, shop):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop, language="da")

    ctx, _ = run_provider(bot, "Hvor er min ordre #1001? Min mail er anna@example.com")

    assert ctx.final_answer.startswith("Ordre #1001: den er sendt.")
    assert "Trackingnummer: 123456789" in ctx.final_answer


@pytest.mark.parametrize(
    ("language", "question", "missing", "text"),
    [
        ("en", "Where is my parcel?", ["order_number", "email"], "order number and the email"),
        ("en", "My order is 1001", ["email"], "email address you used"),
        ("da", "Hvor er min pakke?", ["order_number", "email"], "ordrenummer og den e-mail"),
        ("da", "min mail er anna@example.com", ["order_number"], "Hvad er dit ordrenummer?"),
    ],
)
def test_missing_details_are_asked_for_in_the_bots_language(
    make_chatbot, make_flow, make_endpoint, shop, language, question, missing, text
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop, language=language)

    ctx, events = run_provider(bot, question)

    assert events == [("order", {"status": "need_details", "missing": missing})]
    assert text in ctx.final_answer
    assert shop.requests == []  # nothing is asked of the shop before both pieces are there


def test_the_order_number_from_an_earlier_message_is_used(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    history = [
        {"role": "user", "content": "1001"},
        {"role": "assistant", "content": "Thanks. To protect your details I also need…"},
    ]

    _, events = run_provider(bot, "my email is anna@example.com", history=history)

    assert events[0][1]["order_number"] == "#1001"


def test_the_extractor_flows_json_wins_over_the_builtin_extractor(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)

    _, events = run_provider(
        bot,
        "the one from last week, 1002",
        extracted={"orderNumber": "#1001", "email": "ANNA@example.com"},
    )

    assert events[0][1]["order_number"] == "#1001"


def test_a_wrong_email_gets_the_same_event_and_answer_as_an_unknown_order(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)

    wrong_ctx, wrong_events = run_provider(bot, "order 1001, my email is mallory@example.com")
    unknown_ctx, unknown_events = run_provider(bot, "order 4242, my email is anna@example.com")

    assert wrong_events == unknown_events == [("order", {"status": "not_found"})]
    assert wrong_ctx.final_answer == unknown_ctx.final_answer
    assert "couldn't find an order" in wrong_ctx.final_answer
    assert wrong_ctx.context_parts == [] and "order" not in wrong_ctx.variables
    assert wrong_ctx.metadata == unknown_ctx.metadata


def test_answered_lookups_take_at_least_the_configured_floor(
    make_chatbot, make_flow, make_endpoint, shop, settings
):
    settings.ORDERS_LOOKUP_MIN_SECONDS = 0.2
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)

    wrong_ctx, _ = run_provider(bot, "order 1001, my email is mallory@example.com")
    found_ctx, _ = run_provider(bot, "order 1001, my email is anna@example.com")

    assert wrong_ctx.timings["order_lookup_ms"] >= 200
    assert found_ctx.timings["order_lookup_ms"] >= 200


def test_after_several_failed_lookups_the_bot_stops_guessing(
    make_chatbot, make_flow, make_endpoint, shop, settings
):
    settings.ORDERS_MAX_FAILED_LOOKUPS = 2
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    conversation = str(uuid.uuid4())
    for number in ("2001", "2002"):
        run_provider(bot, f"order {number}, anna@example.com", conversation_id=conversation)
    calls = len(shop.requests)

    ctx, events = run_provider(bot, "order 1001, anna@example.com", conversation_id=conversation)

    assert events == [("order", {"status": "too_many_attempts"})]
    assert "help@shop.example" in ctx.final_answer
    assert len(shop.requests) == calls


def test_a_platform_outage_is_said_plainly_and_recorded_as_an_order_tracking_error(
    make_chatbot, make_flow, make_endpoint, shop
):
    from monitoring.models import ErrorLog

    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    shop.configure(status=500)

    ctx, events = run_provider(bot, "order 1001, anna@example.com")

    assert events == [("order", {"status": "unavailable"})]
    assert "can't reach the shop's order system" in ctx.final_answer
    assert "help@shop.example" in ctx.final_answer
    entry = ErrorLog.objects.get(category="order_tracking")
    assert entry.code == "ORDER_UNAVAILABLE" and entry.chatbot_id == bot.pk
    assert "HTTP 500" in entry.message
    assert shop.scenario.access_token not in entry.message + str(entry.context)


def test_other_flows_are_left_alone(make_chatbot, make_flow, make_endpoint, shop):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)

    ctx, events = run_provider(bot, "order 1001, anna@example.com", flow_name="main")

    assert events == [] and ctx.final_answer is None and "order_lookup_ms" not in ctx.timings


def test_an_inactive_source_or_another_routing_key_is_ignored(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop, routing_key="tracking")
    ctx, events = run_provider(bot, "order 1001, anna@example.com")
    assert events == []

    bot.order_sources.update(routing_key="order", active=False)
    ctx, events = run_provider(bot, "order 1001, anna@example.com")
    assert events == [] and ctx.final_answer is None


def test_the_postcode_can_be_the_second_factor(make_chatbot, make_flow, make_endpoint, shop):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop, second_factor="postcode")

    _, asked_events = run_provider(bot, "order 1001, anna@example.com")
    _, ok_events = run_provider(bot, "ordre 1001, postnummer 2100")
    _, wrong_events = run_provider(bot, "ordre 1001, postnummer 8000")

    assert asked_events == [("order", {"status": "need_details", "missing": ["postcode"]})]
    assert ok_events[0][1]["order_number"] == "#1001"
    assert wrong_events == [("order", {"status": "not_found"})]


def test_flow_roles_other_than_answer_never_trigger_a_lookup(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    Flow.objects.filter(chatbot=bot, name="orders").update(routing_key="")

    _, events = run_provider(bot, "order 1001, anna@example.com")

    assert events == []

"""Order look-ups are limited per (chatbot, order number) and per client address, counted
atomically before the platform is asked (#18 item 2). They were counted per conversation and
read before the look-up: a new conversation reset them, and 20 parallel messages made 16
look-ups against a limit of 5."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from chatbots.selectors import chatbot_config_get
from conversations.hooks import TurnContext
from conversations.models import Conversation, Message, Turn
from orders.services import order_context_provide
from orders.tests.platforms import EMAIL
from orders.tests.test_turn import order_bot, run_provider
from tests.fakes.shopify import FakeShopify, shopify_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    with FakeShopify() as fake:
        fake.orders.append(shopify_order(name="#1001", email=EMAIL))
        yield fake


@pytest.fixture(autouse=True)
def quick(settings):
    settings.ORDERS_MAX_FAILED_LOOKUPS = 3
    settings.ORDERS_LOOKUP_MIN_SECONDS = 0


def turn_from(bot, address: str) -> tuple[str, str]:
    """A real turn of a new conversation sent from `address`: (turn id, conversation id)."""
    conversation = Conversation.objects.create(chatbot=bot)
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="order", sequence=1
    )
    turn = Turn.objects.create(conversation=conversation, user_message=message, client_ip=address)
    return str(turn.pk), str(conversation.pk)


def provide(bot, question: str, *, address: str | None = None):
    """The provider for one message of a new conversation (from `address` when given)."""
    config = chatbot_config_get(public_id=bot.public_id)
    flow = next(f for f in config["flows"] if f["name"] == "orders")
    turn_id, conversation_id = (
        turn_from(bot, address) if address else (str(uuid.uuid4()), str(uuid.uuid4()))
    )
    events: list[tuple[str, dict]] = []

    async def emit(kind, data):
        events.append((kind, data))

    async def run_db(fn, *args, **kwargs):
        return await sync_to_async(fn)(*args, **kwargs)

    ctx = TurnContext(
        turn_id=turn_id,
        conversation_id=conversation_id,
        config=config,
        flow=flow,
        question=question,
        extracted=None,
        message_metadata={},
        history=[],
        language=config["language"],
        emit=emit,
        run_db=run_db,
        timings={},
    )
    return ctx, events


def test_a_new_conversation_does_not_reset_the_lockout_of_an_order_number(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop, second_factor="postcode")
    for guess in ("1000", "1100", "1200"):  # each from a new conversation
        run_provider(bot, f"order 1001, postcode {guess}", conversation_id=str(uuid.uuid4()))
    asked = len(shop.requests)

    ctx, events = run_provider(bot, "order 1001, postcode 2100")  # the right one, too late

    assert events == [("order", {"status": "too_many_attempts"})]
    assert len(shop.requests) == asked  # the platform was not asked again
    assert "shop.example/" not in (ctx.final_answer or "")


def test_one_address_cannot_try_order_numbers_from_new_conversations(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    for number in ("2001", "2002", "2003"):
        ctx, _ = provide(bot, f"order {number}, anna@example.com", address="203.0.113.5")
        async_to_sync(order_context_provide)(ctx)
    asked = len(shop.requests)

    ctx, events = provide(bot, "order 1001, anna@example.com", address="203.0.113.5")
    async_to_sync(order_context_provide)(ctx)
    assert events == [("order", {"status": "too_many_attempts"})]
    assert len(shop.requests) == asked

    ctx, events = provide(bot, "order 1001, anna@example.com", address="198.51.100.1")
    async_to_sync(order_context_provide)(ctx)
    assert events[0][1]["order_number"] == "#1001"  # another customer is not locked out


def test_twenty_parallel_messages_make_at_most_the_limits_look_ups(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    run_provider(bot, "order 1001, my email is eve@example.com")  # how many requests one costs
    per_lookup = len(shop.requests)
    shop.configure(delay_before_headers=0.2)  # every look-up is in flight at the same time
    conversation_id = str(uuid.uuid4())
    contexts = []
    for _ in range(20):
        ctx, events = provide(bot, "order 1001, my email is mallory@example.com")
        ctx.conversation_id = conversation_id  # one conversation, one client
        contexts.append((ctx, events))

    async def all_at_once():
        await asyncio.gather(*(order_context_provide(ctx) for ctx, _ in contexts))

    async_to_sync(all_at_once)()

    outcomes = [ctx.metadata["order_lookup"]["outcome"] for ctx, _ in contexts]
    # The order number had one attempt already: two more reach the platform, 18 are refused.
    assert outcomes.count("not_found") == 2
    assert outcomes.count("too_many_attempts") == 18
    assert per_lookup >= 1 and len(shop.requests) == 3 * per_lookup


def test_the_status_page_link_is_withheld_after_others_tried_the_order(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    _, events = run_provider(bot, "order 1001, anna@example.com")
    assert events[0][1]["status_page_url"].startswith("https://shop.example/")

    run_provider(bot, "order 1001, mallory@example.com")
    after_a_guess, events = run_provider(bot, "order 1001, anna@example.com")

    assert events[0][1]["status_page_url"] is None
    assert "shop.example/" not in after_a_guess.final_answer
    assert after_a_guess.metadata["order_lookup"]["status_page_withheld"] is True


def test_a_verified_look_up_does_not_count_against_the_limit(
    make_chatbot, make_flow, make_endpoint, shop
):
    bot = order_bot(make_chatbot, make_flow, make_endpoint, shop)
    for _ in range(5):
        _, events = run_provider(bot, "order 1001, anna@example.com")
        assert events[0][1]["order_number"] == "#1001"


def test_a_refund_takes_back_only_what_is_still_counted():
    from config.redis import get_redis
    from orders.services import order_attempt_begin, order_attempt_refund

    redis = get_redis()
    keys = [f"test:order-attempts:{uuid.uuid4().hex}", f"test:ip-attempts:{uuid.uuid4().hex}"]
    order_attempt_begin(keys=keys)
    order_attempt_begin(keys=keys)
    order_attempt_refund(keys=keys)
    assert [int(redis.get(k)) for k in keys] == [1, 1]
    assert redis.ttl(keys[0]) > 0
    order_attempt_refund(keys=keys)
    assert [redis.exists(k) for k in keys] == [0, 0]
    # The window expired between the attempt and its refund: nothing is left behind (a plain
    # DECR made a key at -1 with no expiry, an extra attempt for ever).
    order_attempt_begin(keys=keys)
    redis.delete(*keys)
    order_attempt_refund(keys=keys)
    assert [redis.exists(k) for k in keys] == [0, 0]

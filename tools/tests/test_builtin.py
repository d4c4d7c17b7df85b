"""The built-in tools inside real turns: the order look-up (with today's verification and limits),
knowledge search, opening hours and handing over to a person."""

from __future__ import annotations

import json

import pytest

from chatbots.tests.factories import create_entry, create_kb
from orders.tests.platforms import EMAIL, PLATFORMS, TRACKING
from tests.fakes.shopify import FakeShopify, shopify_order
from tools.models import ChatbotTools
from tools.tests.conftest import answer_of, events_of, run_turn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_lookup_floor(settings):
    settings.ORDERS_LOOKUP_MIN_SECONDS = 0
    settings.ORDERS_RETRY_BACKOFF = 0.01


@pytest.fixture
def shop():
    with FakeShopify() as fake:
        fake.orders.append(shopify_order(name="#1001", email=EMAIL))
        yield fake


def order_requests(fake) -> list:
    # One look-up is one GraphQL (or REST orders) request; an access-token exchange is not one.
    return [r for r in fake.requests if "graphql" in r.path or "/orders" in r.path]


def tool_result_sent(openai_server, index: int = 1) -> dict:
    (message,) = [m for m in openai_server.requests[index].json["messages"] if m["role"] == "tool"]
    return json.loads(message["content"])


def test_where_is_order_1001_makes_the_model_call_the_order_tool_and_answers_with_the_status(
    openai_server, tool_bot, shop
):
    bot = tool_bot(["order_lookup", "opening_hours"])
    PLATFORMS["shopify"].make_source(shop, bot)
    openai_server.configure(
        script=[
            {
                "tool_calls": [
                    {"name": "order_lookup", "arguments": {"order_number": "1001", "email": EMAIL}}
                ]
            }
        ]
    )

    turn = run_turn(bot, f"Where is order 1001? My email is {EMAIL}")

    assert turn.status == "completed"
    assert len(order_requests(shop)) == 1
    answer = answer_of(turn)
    assert "shipped" in answer and TRACKING in answer
    events = events_of(turn)
    kinds = [k for k, _ in events]
    assert kinds.index("tool_call") < kinds.index("order") < kinds.index("tool_result")
    call = next(d for k, d in events if k == "tool_call")
    assert call["label"] == "Looking up your order…"
    assert call["arguments"] == {"order_number": "1001", "email": "***"}
    order = next(d for k, d in events if k == "order")
    assert order["order_number"] == "#1001" and order["status"] == "shipped"
    assert next(d for k, d in events if k == "tool_result")["summary"] == "order found"
    assert turn.route["context"]["order_lookup"]["outcome"] == "found"


def test_the_order_tool_will_not_use_an_email_the_customer_never_wrote(
    openai_server, tool_bot, shop
):
    bot = tool_bot(["order_lookup"])
    PLATFORMS["shopify"].make_source(shop, bot)
    openai_server.configure(
        script=[
            {
                "tool_calls": [
                    {"name": "order_lookup", "arguments": {"order_number": "1001", "email": EMAIL}}
                ]
            }
        ]
    )

    turn = run_turn(bot, "Where is order 1001?")

    assert turn.status == "completed"
    assert order_requests(shop) == []
    assert "has not written the email address" in tool_result_sent(openai_server)["error"]


def test_the_order_tool_asks_for_the_second_factor_before_the_shop_is_asked(
    openai_server, tool_bot, shop
):
    bot = tool_bot(["order_lookup"])
    PLATFORMS["shopify"].make_source(shop, bot)
    openai_server.configure(
        script=[{"tool_calls": [{"name": "order_lookup", "arguments": {"order_number": "1001"}}]}]
    )

    turn = run_turn(bot, "Where is order 1001?")

    assert order_requests(shop) == []
    assert "email address used for the order" in tool_result_sent(openai_server)["error"]
    assert next(d for k, d in events_of(turn) if k == "tool_result")["outcome"] == "error"


def test_a_wrong_email_is_not_found_and_counts_against_the_guessing_limit(
    openai_server, tool_bot, shop, settings
):
    settings.ORDERS_MAX_FAILED_LOOKUPS = 1
    bot = tool_bot(["order_lookup"])
    PLATFORMS["shopify"].make_source(shop, bot)
    wrong = {"order_number": "1001", "email": "mallory@example.com"}
    openai_server.configure(script=[{"tool_calls": [{"name": "order_lookup", "arguments": wrong}]}])

    run_turn(bot, "Order 1001, mallory@example.com")
    assert tool_result_sent(openai_server)["result"] == "not_found"
    assert len(order_requests(shop)) == 1

    openai_server.reset()
    openai_server.configure(script=[{"tool_calls": [{"name": "order_lookup", "arguments": wrong}]}])
    turn = run_turn(bot, "Order 1001, mallory@example.com")

    assert len(order_requests(shop)) == 1  # the limit stopped the second guess
    assert "Too many look-ups" in tool_result_sent(openai_server)["error"]
    assert ("order", {"status": "too_many_attempts"}) in events_of(turn)


def test_knowledge_search_gives_the_model_the_bots_passages(openai_server, tool_bot):
    bot = tool_bot(["knowledge_search"])
    kb = create_kb(chatbot=bot)
    create_entry(knowledge_base=kb, title="Returns", text="You can return wine within 30 days.")
    openai_server.configure(
        script=[{"tool_calls": [{"name": "knowledge_search", "arguments": {"query": "return"}}]}]
    )

    turn = run_turn(bot, "Can I return a bottle?")

    assert turn.status == "completed"
    (passage,) = tool_result_sent(openai_server)["passages"]
    assert passage["title"] == "Returns"
    assert "30 days" in answer_of(turn)


def test_opening_hours_tell_the_model_the_hours_and_contact(openai_server, tool_bot):
    bot = tool_bot(["opening_hours"])
    bot.opening_hours = {"mon": [["09:00", "16:00"]]}
    bot.contact_email = "help@vinhuset.example"
    bot.save(update_fields=["opening_hours", "contact_email"])
    openai_server.configure(script=[{"tool_calls": [{"name": "opening_hours"}]}])

    turn = run_turn(bot, "When are you open?")

    hours = tool_result_sent(openai_server)
    assert hours["opening_hours"] == {"mon": [["09:00", "16:00"]]}
    assert hours["contact_email"] == "help@vinhuset.example"
    assert isinstance(hours["open_now"], bool)
    assert turn.status == "completed"


def test_handoff_without_a_helpdesk_tells_the_model_to_give_the_contact_details(
    openai_server, tool_bot
):
    bot = tool_bot(["handoff"])
    openai_server.configure(script=[{"tool_calls": [{"name": "handoff"}]}])

    turn = run_turn(bot, "I want to talk to a person")

    assert turn.status == "completed"
    assert "use the contact details" in tool_result_sent(openai_server)["error"]


def test_the_admin_refuses_a_tool_that_does_not_exist(make_chatbot):
    from django.core.exceptions import ValidationError

    row = ChatbotTools(chatbot=make_chatbot(), tools=["order_lookup", "rm_rf"])
    with pytest.raises(ValidationError) as err:
        row.full_clean()
    assert "rm_rf" in str(err.value)

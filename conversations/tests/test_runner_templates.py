"""Prompt templates in a turn: read safely on a cold cache, rendered with overrides that win.

The turns run on the worker's real runtime (its asyncio loop and database threads) against the
fake OpenAI-compatible server, with the configuration and template caches empty — the path that
crashed with SynchronousOnlyOperation when the template was read on the event loop.
"""

from __future__ import annotations

import pytest

from chatbots.models import AIEndpoint, PromptTemplate, TemplateAssignment
from chatbots.selectors import cache_stats, cache_stats_reset, config_cache_clear
from chatbots.tests.factories import shop_for_tests
from conversations.models import Message, Turn
from conversations.runner import turn_run
from conversations.runtime import get_runtime
from monitoring.tests.factories import create_turn
from tests.fakes.openai import FakeOpenAI

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("async_unsafe_refused"),
]

TEMPLATE_TEXT = (
    "You answer for {{shop_name}} ({{chatbot_id}}) in a {{tone}} tone. "
    "Question: {{question}}. Context: {{context}}"
)


def templated_turn(openai_server, make_chatbot, make_endpoint, make_flow, *, overrides) -> Turn:
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai_server.url}/v1", api_key="sk-test-123456"
    )
    bot = make_chatbot(public_id="templated", name="Vinhuset", with_main_flow=False)
    flow = make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(),
        name="shop-voice",
        text=TEMPLATE_TEXT,
        variables={"tone": "neutral", "shop_name": "Shop"},
    )
    # objects.create skips clean(): the runtime must hold the rule even for rows the admin never
    # validated (an import, a shell).
    TemplateAssignment.objects.create(
        chatbot=bot, flow=flow, template=template, overrides=overrides
    )
    turn = create_turn(chatbot=bot)
    Message.objects.filter(pk=turn.user_message_id).update(content="Do you sell red wine?")
    return turn


def run_cold(turn: Turn) -> str:
    config_cache_clear()
    cache_stats_reset()
    runtime = get_runtime()
    return runtime.submit(turn_run(runtime, str(turn.pk))).result(60)


def system_prompt(server: FakeOpenAI) -> str:
    messages = server.requests[-1].json["messages"]
    return next(m["content"] for m in messages if m["role"] == "system")


def test_a_templated_flow_answers_on_a_cold_cache_with_the_override_in_its_prompt(
    openai_server, make_chatbot, make_endpoint, make_flow
):
    turn = templated_turn(
        openai_server, make_chatbot, make_endpoint, make_flow, overrides={"tone": "warm"}
    )

    assert run_cold(turn) == "completed"

    turn.refresh_from_db()
    assert turn.error_code == ""
    assert turn.assistant_message.content == "You asked: Do you sell red wine?"
    assert system_prompt(openai_server) == (
        "You answer for Vinhuset (templated) in a warm tone. "
        "Question: Do you sell red wine?. Context: "
    )
    # Both reads really missed the cache (the path that used to crash), and nothing was read twice.
    stats = cache_stats()
    assert (stats["config"]["hits"], stats["config"]["misses"]) == (0, 1)
    assert (stats["template"]["hits"], stats["template"]["misses"]) == (0, 1)


def test_an_override_of_a_built_in_wins_and_the_message_s_own_data_cannot_be_overridden(
    openai_server, make_chatbot, make_endpoint, make_flow
):
    turn = templated_turn(
        openai_server,
        make_chatbot,
        make_endpoint,
        make_flow,
        overrides={"shop_name": "Vinhuset Aarhus", "question": "ignored", "context": "ignored"},
    )

    assert run_cold(turn) == "completed"

    prompt = system_prompt(openai_server)
    assert prompt.startswith("You answer for Vinhuset Aarhus (templated) in a neutral tone.")
    assert "Question: Do you sell red wine?." in prompt
    assert "ignored" not in prompt

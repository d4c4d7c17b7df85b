"""Flowise agents run their own tools: what they report (usedTools, agentReasoning) reaches the
customer as tool_call / tool_result steps, without the tools' inputs or outputs, and is kept
with the turn like the tool loop's own calls."""

from __future__ import annotations

import json

import pytest

from chatbots.models import AIEndpoint
from conversations.models import Message
from conversations.selectors import seed_message_fields
from tests.fakes.flowise import FakeFlowise
from tools.tests.conftest import events_of, run_turn

pytestmark = pytest.mark.django_db(transaction=True)

USED = [
    {"tool": "order_api", "toolInput": {"email": "anna@example.com"}, "toolOutput": "shipped"},
    {"tool": "calculator", "toolInput": {"input": "2*3"}, "toolOutput": "", "error": "boom"},
]
REASONING = [
    {"agentName": "Returns agent", "messages": ["..."], "usedTools": [{"tool": "rma_api"}]},
    {"agentName": "Supervisor", "messages": ["..."]},
]


@pytest.fixture
def flowise_bot(make_chatbot, make_endpoint, make_flow):
    def build(fake):
        endpoint = make_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url=fake.url)
        bot = make_chatbot(with_main_flow=False)
        make_flow(chatbot=bot, name="agent", is_main=True, endpoint=endpoint)
        return bot

    return build


@pytest.mark.parametrize("json_fallback", [False, True], ids=["stream", "json"])
def test_a_flowise_agents_tool_use_reaches_the_customer_as_steps(flowise_bot, json_fallback):
    with FakeFlowise(
        used_tools=USED, agent_reasoning=REASONING, json_fallback=json_fallback
    ) as fake:
        turn = run_turn(flowise_bot(fake), "Where is my order?")

    assert turn.status == "completed"
    events = events_of(turn)
    steps = [(k, d["tool"], d.get("ok")) for k, d in events if k in ("tool_call", "tool_result")]
    assert steps == [
        ("tool_call", "order_api", None),
        ("tool_result", "order_api", True),
        ("tool_call", "calculator", None),
        ("tool_result", "calculator", False),
        ("tool_call", "rma_api", None),
        ("tool_result", "rma_api", True),
    ]
    shown = json.dumps([d for k, d in events if k in ("tool_call", "tool_result")])
    assert "anna@example.com" not in shown and "shipped" not in shown and "boom" not in shown
    rma = next(d for k, d in events if k == "tool_result" and d["tool"] == "rma_api")
    assert rma["source"] == "flowise" and rma["agent"] == "Returns agent"
    assert [c["tool"] for c in turn.route["tools"]["calls"]] == [
        "order_api",
        "calculator",
        "rma_api",
    ]
    info = seed_message_fields(Message.objects.get(pk=turn.assistant_message_id))["agent_info"]
    assert info["tools_called"] == ["order_api", "calculator", "rma_api"]


def test_a_flowise_answer_without_tools_sends_no_steps(flowise_bot):
    with FakeFlowise() as fake:
        turn = run_turn(flowise_bot(fake), "Hello")

    assert not [k for k, _ in events_of(turn) if k in ("tool_call", "tool_result")]
    assert "tools" not in turn.route

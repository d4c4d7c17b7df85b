"""Agents: an answer flow's model hands the question to another answer flow of the bot with the
built-in transfer_to_agent tool; the stored answer records which agents took part."""

from __future__ import annotations

import json

import pytest

from chatbots.tests.factories import create_entry, create_kb
from conversations.models import Message
from conversations.selectors import seed_message_fields
from tools.tests.conftest import answer_of, events_of, run_turn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agents_bot(tool_bot, make_flow):
    bot = tool_bot(["transfer_to_agent", "opening_hours"])
    kb = create_kb(chatbot=bot)
    create_entry(knowledge_base=kb, title="Returns", text="Return wine within 30 days.")
    make_flow(chatbot=bot, name="returns desk", routing_key="returns", knowledge_base=kb)
    return bot


def transfer(agent: str) -> list[dict]:
    return [{"tool_calls": [{"name": "transfer_to_agent", "arguments": {"agent": agent}}]}]


def test_the_model_transfers_the_question_and_the_other_agent_answers(openai_server, agents_bot):
    openai_server.configure(script=transfer("returns"))

    turn = run_turn(agents_bot, "How do I return a bottle?")

    assert turn.status == "completed"
    offered = next(
        t["function"]
        for t in openai_server.requests[0].json["tools"]
        if t["function"]["name"] == "transfer_to_agent"
    )
    assert offered["parameters"]["properties"]["agent"]["enum"] == ["returns"]
    assert len(openai_server.requests) == 1  # the main flow's model is not asked again
    assert "30 days" in answer_of(turn)  # the returns desk (builtin) answered
    assert turn.flow == "returns desk"
    assert turn.route["agents"] == ["main", "returns desk"]
    result = next(d for k, d in events_of(turn) if k == "tool_result")
    assert result["ok"] and result["summary"] == "returns desk"
    info = seed_message_fields(Message.objects.get(pk=turn.assistant_message_id))["agent_info"]
    assert info["agents"] == ["main", "returns desk"] and info["flow"] == "returns desk"


def test_a_transfer_to_an_agent_the_bot_does_not_have_is_an_error_for_the_model(
    openai_server, agents_bot
):
    openai_server.configure(script=transfer("billing"))

    turn = run_turn(agents_bot, "Who handles billing?")

    assert turn.status == "completed" and turn.flow == "main"
    messages = openai_server.requests[1].json["messages"]
    (result,) = [m for m in messages if m["role"] == "tool"]
    assert json.loads(result["content"]) == {"error": "No such agent to transfer to."}
    assert "agents" not in turn.route


def test_a_bot_with_no_other_agent_is_not_offered_the_transfer(openai_server, tool_bot):
    bot = tool_bot(["transfer_to_agent", "opening_hours"])

    run_turn(bot, "Hello")

    offered = [t["function"]["name"] for t in openai_server.requests[0].json["tools"]]
    assert offered == ["opening_hours"]

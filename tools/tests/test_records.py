"""Every tool call is recorded: on the turn (and so in agent_info and the sessions API), in the
admin transcript with its timing, and in /metrics per tool and outcome."""

from __future__ import annotations

import pytest

from conversations.models import Message
from conversations.selectors import seed_message_fields
from tools.tests.conftest import run_turn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tooled_turn(openai_server, tool_bot, test_tools):
    bot = tool_bot(["echo", "boom"])
    openai_server.configure(
        script=[
            {"tool_calls": [{"name": "echo", "arguments": {"order_number": "1"}}]},
            {"tool_calls": [{"name": "boom"}, {"name": "not_ours"}]},
        ]
    )
    return run_turn(bot, "Look it up twice")


def test_the_answer_tells_which_tools_were_called_in_how_many_steps(tooled_turn):
    answer = Message.objects.get(pk=tooled_turn.assistant_message_id)

    info = seed_message_fields(answer)["agent_info"]

    assert info["tools_called"] == ["echo", "boom", "not_ours"]
    assert info["steps"] == 2
    assert info["flow"] == "main"


def test_a_turn_without_tools_keeps_the_plain_agent_info(openai_server, tool_bot, test_tools):
    turn = run_turn(tool_bot([]), "Hello")
    answer = Message.objects.get(pk=turn.assistant_message_id)

    assert "tools_called" not in seed_message_fields(answer)["agent_info"]


def test_the_admin_transcript_shows_each_call_with_its_outcome_and_timing(
    tooled_turn, admin_client
):
    page = admin_client.get(
        f"/admin/conversations/conversation/{tooled_turn.conversation_id}/change/"
    ).content.decode()

    assert "step 1 · echo · ok · " in page
    assert "step 2 · boom · error · " in page
    assert "step 2 · not_ours · refused · " in page
    calls = tooled_turn.route["tools"]["calls"]
    assert f"step 1 · echo · ok · {calls[0]['duration_ms']} ms" in page


def test_metrics_count_calls_per_tool_and_outcome(tooled_turn, admin_client):
    text = admin_client.get("/metrics").content.decode()

    assert 'chatbot_tool_calls_total{outcome="ok",tool="echo"} 1.0' in text
    assert 'chatbot_tool_calls_total{outcome="error",tool="boom"} 1.0' in text
    # A name the model made up becomes no label of ours.
    assert 'chatbot_tool_calls_total{outcome="refused",tool="(not allowed)"} 1.0' in text
    assert 'chatbot_tool_call_seconds_total{tool="echo"}' in text


def test_each_call_records_the_prompt_tokens_before_and_after_its_result(tooled_turn, admin_client):
    echo, boom, refused = tooled_turn.route["tools"]["calls"]

    assert echo["tokens_before"] < echo["tokens_after"] == boom["tokens_before"]
    assert boom["tokens_after"] > boom["tokens_before"]
    assert refused["tokens_after"] == boom["tokens_after"]
    page = admin_client.get(
        f"/admin/conversations/conversation/{tooled_turn.conversation_id}/change/"
    ).content.decode()
    assert f"prompt {echo['tokens_before']} → {echo['tokens_after']} tokens" in page

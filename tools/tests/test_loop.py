"""The tool loop inside real turns: the model asks, allowed tools run, results go back, bounded.

Every turn runs on the worker's runtime against FakeOpenAI, which streams the scripted tool calls
as the real API does (split arguments, parallel calls, text before calls).
"""

from __future__ import annotations

import json

import pytest

from tools.tests.conftest import answer_of, events_of, run_turn

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_ARGS = {"order_number": "1001", "email": "anna@example.com"}


def tool_messages(request) -> list[dict]:
    return [m for m in request.json["messages"] if m["role"] == "tool"]


def test_the_model_calls_a_tool_and_answers_from_its_result(openai_server, tool_bot, test_tools):
    bot = tool_bot(["echo"])
    openai_server.configure(script=[{"tool_calls": [{"name": "echo", "arguments": ORDER_ARGS}]}])

    turn = run_turn(bot, "Where is order 1001? anna@example.com")

    assert turn.status == "completed"
    assert test_tools.seen == [("echo", ORDER_ARGS)]
    assert "shipped" in answer_of(turn)
    first, second = openai_server.requests
    assert [t["function"]["name"] for t in first.json["tools"]] == ["echo"]
    assistant = next(m for m in second.json["messages"] if m.get("tool_calls"))
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == ORDER_ARGS
    (result,) = tool_messages(second)
    assert result["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert json.loads(result["content"])["status"] == "shipped"


def test_the_customer_sees_the_step_with_personal_arguments_redacted(
    openai_server, tool_bot, test_tools
):
    bot = tool_bot(["echo"])
    openai_server.configure(script=[{"tool_calls": [{"name": "echo", "arguments": ORDER_ARGS}]}])

    turn = run_turn(bot, "Where is order 1001?")

    events = events_of(turn)
    kinds = [k for k, _ in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    call = next(d for k, d in events if k == "tool_call")
    assert call["tool"] == "echo" and call["label"] == "Looking up your order…"
    assert call["arguments"] == {"order_number": "1001", "email": "***"}
    result = next(d for k, d in events if k == "tool_result")
    assert result["ok"] is True and result["summary"] == "order found"
    assert result["call_id"] == call["call_id"]
    steps = [d for k, d in events if k in ("tool_call", "tool_result")]
    assert "anna@example.com" not in json.dumps(steps)
    assert turn.route["tools"]["steps"] == 1
    (record,) = turn.route["tools"]["calls"]
    assert record["tool"] == "echo" and record["outcome"] == "ok"
    assert record["arguments"]["email"] == "***"


def test_text_streamed_before_a_tool_call_reaches_the_customer_first(
    openai_server, tool_bot, test_tools
):
    bot = tool_bot(["echo"])
    openai_server.configure(
        script=[{"content": "Let me check that. ", "tool_calls": [{"name": "echo"}]}]
    )

    turn = run_turn(bot, "Where is my order?")

    events = events_of(turn)
    kinds = [k for k, _ in events]
    assert kinds.index("token") < kinds.index("tool_call")
    assert answer_of(turn).startswith("Let me check that. From the tools:")
    assistant = next(m for m in openai_server.requests[1].json["messages"] if m.get("tool_calls"))
    assert assistant["content"] == "Let me check that. "


def test_failing_and_slow_tools_become_errors_the_model_reads_not_a_failed_turn(
    openai_server, tool_bot, test_tools
):
    bot = tool_bot(["boom", "slow", "refuses"], call_timeout=1)
    openai_server.configure(
        script=[
            {"tool_calls": [{"name": "boom"}, {"name": "slow"}, {"name": "refuses"}]},
        ],
        interleave_calls=True,
    )

    turn = run_turn(bot, "Do the things")

    assert turn.status == "completed"
    boom, slow, refuses = (
        json.loads(m["content"]) for m in tool_messages(openai_server.requests[1])
    )
    assert boom == {"error": "The tool failed."}  # nothing of the exception leaks
    assert "did not answer within 1 s" in slow["error"]
    assert refuses == {"error": "No order with that number."}
    results = [d for k, d in events_of(turn) if k == "tool_result"]
    assert [(r["tool"], r["outcome"], r["ok"]) for r in results] == [
        ("boom", "error", False),
        ("slow", "timeout", False),
        ("refuses", "error", False),
    ]
    assert "hunter2" not in json.dumps(events_of(turn)) + json.dumps(turn.route)
    assert answer_of(turn).startswith("From the tools:")
    # The turn went on, so the error log is where the shop learns of the failed calls.
    from monitoring.models import ErrorLog

    logged = ErrorLog.objects.filter(turn_id=turn.pk, category="tool").order_by("code")
    assert sorted((e.code, e.context["tool"]) for e in logged) == [
        ("TOOL_ERROR", "boom"),
        ("TOOL_ERROR", "refuses"),
        ("TOOL_TIMEOUT", "slow"),
    ]
    assert all(e.chatbot_id == bot.pk and e.shop_id == bot.shop_id for e in logged)
    assert "No order with that number." in logged.get(context__tool="refuses").message
    assert "hunter2" not in json.dumps([e.message for e in logged] + [e.context for e in logged])


def test_a_tool_not_on_the_bots_allow_list_is_never_called_even_if_the_model_asks(
    openai_server, tool_bot, test_tools
):
    bot = tool_bot(["echo"])
    openai_server.configure(script=[{"tool_calls": [{"name": "secret_tool", "arguments": {}}]}])

    turn = run_turn(bot, "Use the secret tool")

    assert turn.status == "completed"
    assert test_tools.seen == []
    (result,) = tool_messages(openai_server.requests[1])
    assert "not available" in json.loads(result["content"])["error"]
    assert not [k for k, _ in events_of(turn) if k in ("tool_call", "tool_result")]
    assert turn.route["tools"]["calls"][0]["outcome"] == "refused"
    offered = [t["function"]["name"] for t in openai_server.requests[0].json["tools"]]
    assert offered == ["echo"]


def test_the_loop_stops_at_its_step_bound_and_the_model_answers_without_tools(
    openai_server, tool_bot, test_tools
):
    bot = tool_bot(["echo"], max_steps=2)
    openai_server.configure(script=[{"tool_calls": [{"name": "echo"}]}], script_repeat=True)

    turn = run_turn(bot, "Again and again")

    assert turn.status == "completed"
    assert len(test_tools.seen) == 2
    requests = openai_server.requests
    assert len(requests) == 3
    assert [r.json.get("tool_choice") for r in requests] == [None, None, "none"]
    assert turn.route["tools"]["steps"] == 2
    assert answer_of(turn).startswith("From the tools:")


def test_a_huge_tool_result_is_cut_before_the_model_sees_it(
    openai_server, tool_bot, test_tools, settings
):
    settings.TOOLS_RESULT_MAX_CHARS = 500
    bot = tool_bot(["huge"])
    openai_server.configure(script=[{"tool_calls": [{"name": "huge"}]}])

    turn = run_turn(bot, "Big one")

    assert turn.status == "completed"
    (result,) = tool_messages(openai_server.requests[1])
    assert result["content"].startswith("x" * 500)
    assert result["content"].endswith("[cut: the result had 100000 characters]")
    assert len(result["content"]) < 600


def test_a_bot_without_tools_is_offered_none(openai_server, tool_bot, test_tools):
    bot = tool_bot([])

    turn = run_turn(bot, "Hello there")

    assert turn.status == "completed"
    (request,) = openai_server.requests
    assert "tools" not in request.json
    assert "tools" not in turn.route


@pytest.fixture
def parallel_bot(openai_server, tool_bot, make_endpoint, make_flow):
    """Main flow (with the echo tool) on `openai_server`, started beside a router that takes a
    second to answer `router_answer` on a server of its own."""
    from chatbots.models import AIEndpoint, Flow
    from tests.fakes.openai import FakeOpenAI

    def build(router_answer: str):
        bot = tool_bot(["echo"])
        bot.routing_mode = "parallel"
        bot.save(update_fields=["routing_mode"])
        router_server = FakeOpenAI(answer=router_answer, delay_before_first_token=1.0).start()
        routers.append(router_server)
        router_endpoint = make_endpoint(
            kind=AIEndpoint.Kind.OPENAI, base_url=f"{router_server.url}/v1", shop=bot.shop
        )
        make_flow(chatbot=bot, name="router", role=Flow.Role.ROUTER, endpoint=router_endpoint)
        make_flow(chatbot=bot, name="returns", routing_key="returns")  # builtin endpoint
        return bot

    routers: list = []
    yield build
    for server in routers:
        server.stop()


def test_in_parallel_routing_no_tool_runs_for_a_main_flow_the_router_drops(
    openai_server, parallel_bot, test_tools
):
    bot = parallel_bot("returns")
    openai_server.configure(script=[{"tool_calls": [{"name": "echo", "arguments": ORDER_ARGS}]}])

    turn = run_turn(bot, "I want to return a bottle")

    assert turn.status == "completed" and turn.route["parallel"] == "aborted"
    assert len(openai_server.requests) == 1  # the main flow asked for the tool...
    assert test_tools.seen == []  # ...which never ran
    assert turn.flow == "returns"
    assert not [k for k, _ in events_of(turn) if k in ("tool_call", "tool_result")]


def test_in_parallel_routing_the_tools_run_once_the_router_keeps_the_main_flow(
    openai_server, parallel_bot, test_tools
):
    bot = parallel_bot("nothing")
    openai_server.configure(script=[{"tool_calls": [{"name": "echo", "arguments": ORDER_ARGS}]}])

    turn = run_turn(bot, "Where is order 1001?")

    assert turn.status == "completed" and turn.route["parallel"] == "released"
    assert test_tools.seen == [("echo", ORDER_ARGS)]
    assert "shipped" in answer_of(turn)


@pytest.mark.parametrize(
    "arguments",
    [
        "[" * 50_000,  # json.loads would recurse past Python's limit
        '{"note": "' + "z" * 100_000 + '"}',  # past the per-call cap: cut, so not JSON
        "not json at all",
        "[1, 2]",  # JSON, but not an object
    ],
)
def test_hostile_arguments_become_an_error_for_the_model_not_a_failed_turn(
    openai_server, tool_bot, test_tools, arguments
):
    bot = tool_bot(["echo"])
    openai_server.configure(
        script=[{"tool_calls": [{"name": "echo", "arguments": arguments}]}], arguments_chunk=4096
    )

    turn = run_turn(bot, "Hostile")

    assert turn.status == "completed"
    assert test_tools.seen == []
    (result,) = tool_messages(openai_server.requests[1])
    assert json.loads(result["content"]) == {"error": "The arguments are not a JSON object."}


def test_a_long_argument_is_cut_short_in_the_event_but_reaches_the_tool_whole(
    openai_server, tool_bot, test_tools
):
    bot = tool_bot(["echo"])
    note = "y" * 1000
    openai_server.configure(
        script=[{"tool_calls": [{"name": "echo", "arguments": {"note": note}}]}]
    )

    turn = run_turn(bot, "Long")

    assert test_tools.seen == [("echo", {"note": note})]
    call = next(d for k, d in events_of(turn) if k == "tool_call")
    assert call["arguments"]["note"] == "y" * 200 + "…"

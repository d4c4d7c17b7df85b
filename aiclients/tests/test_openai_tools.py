"""Tool calls streamed by an OpenAI-compatible server, assembled by the client (ai_protocols.md §7).

FakeOpenAI streams them as the real API does: the first fragment of a call carries its id and
name, later fragments pieces of the arguments; parallel calls by index; text before the calls.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import httpx
import pytest

from aiclients import UpstreamError, UpstreamRequest, stream_openai
from aiclients.openai_compat import ToolCallAssembler
from tests.fakes import FakeOpenAI

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "order_lookup",
            "description": "Look an order up",
            "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def openai():
    with FakeOpenAI() as srv:
        yield srv


def run(url: str, **kw):
    req = UpstreamRequest(
        base_url=url + "/v1", api_key="", target="gpt-4o-mini", question="Where is 1001?", **kw
    )

    async def main():
        async with httpx.AsyncClient() as client:
            events = []
            async with aclosing(stream_openai(client, req)) as stream:
                async for event in stream:
                    events.append(event)
            return events

    return asyncio.run(main())


def test_split_arguments_are_joined_into_one_call(openai):
    args = {"order_number": "1001", "email": "anna@example.com"}
    openai.configure(
        script=[{"tool_calls": [{"name": "order_lookup", "arguments": args}]}], arguments_chunk=3
    )

    events = run(openai.url, tools=TOOLS)

    (calls,) = [e.data for e in events if e.kind == "tool_calls"]
    assert [c["name"] for c in calls] == ["order_lookup"]
    assert json.loads(calls[0]["arguments"]) == args
    assert calls[0]["id"].startswith("call_")
    assert openai.requests[0].json["tools"] == TOOLS


def test_two_parallel_calls_interleaved_by_index_come_out_in_order(openai):
    openai.configure(
        script=[
            {
                "tool_calls": [
                    {"name": "order_lookup", "arguments": {"order_number": "1001"}},
                    {"name": "opening_hours", "arguments": {}},
                ]
            }
        ],
        interleave_calls=True,
        arguments_chunk=2,
    )

    events = run(openai.url, tools=TOOLS)

    (calls,) = [e.data for e in events if e.kind == "tool_calls"]
    assert [c["name"] for c in calls] == ["order_lookup", "opening_hours"]
    assert json.loads(calls[0]["arguments"]) == {"order_number": "1001"}
    assert json.loads(calls[1]["arguments"]) == {}
    assert calls[0]["id"] != calls[1]["id"]


def test_text_before_a_call_streams_as_tokens_before_the_call(openai):
    openai.configure(
        script=[{"content": "Let me check that.", "tool_calls": [{"name": "order_lookup"}]}]
    )

    events = run(openai.url, tools=TOOLS)

    kinds = [e.kind for e in events if e.kind != "usage"]
    assert kinds[-1] == "tool_calls" and set(kinds[:-1]) == {"token"}
    assert "".join(e.text for e in events if e.kind == "token") == "Let me check that."


def test_a_call_without_text_is_not_an_empty_answer_but_nothing_at_all_still_is(openai):
    openai.configure(script=[{"tool_calls": [{"name": "order_lookup"}]}])
    assert [e.kind for e in run(openai.url, tools=TOOLS) if e.kind != "usage"] == ["tool_calls"]

    openai.configure(empty_answer=True, script=None)
    with pytest.raises(UpstreamError) as err:
        run(openai.url)
    assert err.value.code == "UPSTREAM_EMPTY"


def test_a_server_answering_in_one_json_piece_gives_the_same_calls(openai):
    openai.configure(
        json_fallback=True,
        script=[{"content": "One moment.", "tool_calls": [{"name": "order_lookup"}]}],
    )

    events = run(openai.url, tools=TOOLS)

    assert [e.kind for e in events if e.kind != "usage"] == ["token", "tool_calls"]
    (calls,) = [e.data for e in events if e.kind == "tool_calls"]
    assert calls[0]["name"] == "order_lookup"


def test_tool_results_are_sent_back_after_the_assistant_calls(openai):
    openai.configure(script=[{"tool_calls": [{"name": "order_lookup", "id": "call_1"}]}])
    first = run(openai.url, tools=TOOLS)
    call = next(e.data[0] for e in first if e.kind == "tool_calls")

    tool_messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "shipped"},
    ]
    second = run(openai.url, tools=TOOLS, tool_messages=tool_messages)

    assert "".join(e.text for e in second if e.kind == "token") == "From the tools: shipped"
    sent = openai.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]


def test_a_tool_result_answering_no_call_is_refused_like_the_real_api(openai):
    with pytest.raises(UpstreamError) as err:
        run(
            openai.url,
            tools=TOOLS,
            tool_messages=[{"role": "tool", "tool_call_id": "call_x", "content": "hi"}],
        )
    assert err.value.status == 400


def test_tool_choice_none_gets_text_even_from_a_script_that_calls(openai):
    openai.configure(script=[{"tool_calls": [{"name": "order_lookup"}]}])

    events = run(openai.url, tools=TOOLS, tool_choice="none")

    assert not [e for e in events if e.kind == "tool_calls"]
    assert openai.requests[0].json["tool_choice"] == "none"


def test_the_assembler_is_lenient_with_servers_that_differ():
    asm = ToolCallAssembler()
    # Whole arguments in one fragment, no `type`, no id at all, an index starting at 1, junk.
    asm.feed([{"index": 1, "function": {"name": "a", "arguments": '{"x": 1}'}}])
    asm.feed([{"index": "zero"}, None, {"index": 2, "function": {"arguments": "{}"}}])
    asm.feed("not a list")

    assert asm.result() == [{"id": "call_1", "name": "a", "arguments": '{"x": 1}'}]

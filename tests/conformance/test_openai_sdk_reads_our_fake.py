"""The official `openai` Python SDK against our fake OpenAI server: if the fake spoke a dialect
of its own, the SDK — written against the real API — would stumble here (issue #25).

Each test uses the SDK the way an application does: streaming text with usage, streamed
parallel tool calls assembled by the SDK's own stream helper, embeddings, the model list, and
the error classes the SDK raises for 401 and 429.
"""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai import FakeOpenAI

openai = pytest.importorskip("openai", reason="the openai SDK is in requirements-dev.txt")

KEY = "sk-conformance-0123456789"


@pytest.fixture
def fake():
    with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
def client(fake):
    return openai.OpenAI(api_key=KEY, base_url=fake.url + "/v1", max_retries=0, timeout=10)


def test_the_sdk_streams_text_and_the_usage_chunk(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is my order?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Where is my order?" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage = chunks[-1].usage
    assert chunks[-1].choices == []  # the usage chunk has no choices, as the API documents
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_the_sdks_stream_helper_assembles_our_parallel_tool_calls(fake, client):
    fake.configure(
        script=[
            {
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "name": "order_lookup",
                        "arguments": {"order_number": "1001", "email": "a@b.dk"},
                    },
                    {"name": "opening_hours", "arguments": {}},
                ],
            }
        ],
        arguments_chunk=4,
        interleave_calls=True,
    )
    tools = [
        {
            "type": "function",
            "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
        }
        for name in ("order_lookup", "opening_hours")
    ]

    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is order 1001? And are you open?"}],
        tools=tools,
    ) as stream:
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["order_lookup", "opening_hours"]
    assert json.loads(calls[0].function.arguments) == {"order_number": "1001", "email": "a@b.dk"}
    assert json.loads(calls[1].function.arguments) == {}
    assert all(c.id and c.type == "function" for c in calls)


def test_the_sdk_reads_our_tool_result_round_trip(fake, client):
    fake.configure(script=[{"tool_calls": [{"name": "opening_hours", "arguments": {}}]}])
    tools = [{"type": "function", "function": {"name": "opening_hours", "parameters": {}}}]
    messages = [{"role": "user", "content": "Are you open?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Open 9-17 on weekdays."},
    ]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content


def test_the_sdk_reads_embeddings_and_the_model_list(client):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b c"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == len(result.data[1].embedding) > 0
    assert result.usage.prompt_tokens > 0
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]


def test_a_wrong_key_is_the_sdks_authentication_error(fake):
    wrong = openai.OpenAI(api_key="sk-wrong", base_url=fake.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "invalid_api_key"


def test_a_rate_limit_is_the_sdks_rate_limit_error_with_retry_after(fake, client):
    fake.configure(status=429, retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "2"

"""MCP servers: a real server built with the `mcp` SDK on 127.0.0.1 (tests/fakes/mcp_server.py),
connected in the admin, its tools ticked for a bot and called in real turns."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from chatbots.tests.factories import shop_for_tests
from tests.fakes.mcp_server import FakeMCPServer
from tools.admin import mcp_server_refresh
from tools.models import McpServer
from tools.tests.conftest import events_of, run_turn

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "mcp-key-SECRET-0123456789"


@pytest.fixture
def mcp_fake():
    with FakeMCPServer(**{"X-Api-Key": KEY}) as fake:
        yield fake


def connected(fake, *, name="shoptools", transport="streamable_http", **kw) -> McpServer:
    url = f"{fake.url}/mcp" if transport == "streamable_http" else f"{fake.url}/sse-transport/sse"
    server = McpServer.objects.create(
        shop=shop_for_tests(),
        name=name,
        url=url,
        transport=transport,
        auth_headers=f"X-Api-Key: {KEY}",
        **kw,
    )
    ok, text = mcp_server_refresh(server=server)
    assert ok, text
    return server


def tool_results(openai_server, index: int = 1) -> list:
    messages = openai_server.requests[index].json["messages"]
    return [m["content"] for m in messages if m["role"] == "tool"]


def test_a_server_is_listed_with_its_auth_header_and_its_tools_are_cached(mcp_fake):
    server = connected(mcp_fake)

    server.refresh_from_db()
    names = [t["name"] for t in server.tools_cache]
    assert {"add", "order_status", "slow", "fail", "huge", "vanish"} <= set(names)
    add = next(t for t in server.tools_cache if t["name"] == "add")
    assert add["input_schema"]["required"] == ["a", "b"]
    assert server.tools_listed_at is not None


def test_the_older_sse_transport_lists_the_same_tools(mcp_fake):
    server = connected(mcp_fake, transport="sse")

    assert "order_status" in [t["name"] for t in server.tools_cache]


def test_a_server_refusing_our_header_is_reported_in_words_not_a_crash(mcp_fake):
    server = McpServer.objects.create(
        shop=shop_for_tests(),
        name="wrongkey",
        url=f"{mcp_fake.url}/mcp",
        auth_headers="X-Api-Key: wrong-key-4242",
    )

    ok, text = mcp_server_refresh(server=server)

    assert not ok and "Could not reach the service" in text
    assert "wrong-key-4242" not in text
    server.refresh_from_db()
    assert server.tools_cache == []


def test_a_server_on_a_private_address_is_refused_unless_the_installation_allows_it(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    server = McpServer(shop=shop_for_tests(), name="local", url="http://127.0.0.1:9/mcp")

    with pytest.raises(ValidationError) as err:
        server.full_clean()
    assert "loopback" in str(err.value)
    ok, text = mcp_server_refresh(server=server)
    assert not ok and "loopback" in text


def test_bad_auth_header_lines_are_refused_on_the_form():
    server = McpServer(
        shop=shop_for_tests(), name="x", url="https://tools.example/mcp", auth_headers="no colon"
    )
    with pytest.raises(ValidationError) as err:
        server.full_clean()
    assert "Name: value" in str(err.value)


def test_the_bot_calls_a_ticked_mcp_tool_and_answers_from_it(openai_server, tool_bot, mcp_fake):
    connected(mcp_fake)
    bot = tool_bot(["mcp__shoptools__order_status", "mcp__shoptools__add"])
    openai_server.configure(
        script=[
            {
                "tool_calls": [
                    {"name": "mcp__shoptools__order_status", "arguments": {"order_number": "1001"}}
                ]
            }
        ]
    )

    turn = run_turn(bot, "Where is 1001?")

    assert turn.status == "completed"
    assert mcp_fake.calls == [("order_status", {"order_number": "1001"})]
    offered = {t["function"]["name"] for t in openai_server.requests[0].json["tools"]}
    assert offered == {"mcp__shoptools__order_status", "mcp__shoptools__add"}
    assert tool_results(openai_server) == ["Order 1001 is packed and leaves tomorrow."]
    call = next(d for k, d in events_of(turn) if k == "tool_call")
    assert call["arguments"] == {"order_number": "***"}  # another party's tool: nothing shown
    assert call["label"] == "Asking shoptools…"


def test_an_mcp_tool_that_is_not_ticked_is_never_called(openai_server, tool_bot, mcp_fake):
    connected(mcp_fake)
    bot = tool_bot(["mcp__shoptools__order_status"])
    openai_server.configure(
        script=[{"tool_calls": [{"name": "mcp__shoptools__add", "arguments": {"a": 1, "b": 2}}]}]
    )

    turn = run_turn(bot, "Add one and two")

    assert turn.status == "completed"
    assert mcp_fake.calls == []
    assert "not available" in json.loads(tool_results(openai_server)[0])["error"]


def test_failing_slow_and_huge_mcp_tools_end_in_an_answer_not_a_failed_turn(
    openai_server, tool_bot, mcp_fake, settings
):
    settings.TOOLS_RESULT_MAX_CHARS = 1000
    connected(mcp_fake)
    bot = tool_bot(
        ["mcp__shoptools__fail", "mcp__shoptools__slow", "mcp__shoptools__huge"], call_timeout=2
    )
    openai_server.configure(
        script=[
            {
                "tool_calls": [
                    {"name": "mcp__shoptools__fail"},
                    {"name": "mcp__shoptools__slow", "arguments": {"seconds": 30}},
                    {"name": "mcp__shoptools__huge", "arguments": {"size": 200000}},
                ]
            }
        ]
    )

    turn = run_turn(bot, "Try everything")

    assert turn.status == "completed"
    fail, slow, huge = tool_results(openai_server)
    assert "reported an error" in json.loads(fail)["error"]
    assert "did not answer within 2 s" in json.loads(slow)["error"]
    assert huge.startswith("y" * 1000) and "[cut: the result had 200000 characters]" in huge
    outcomes = [(d["tool"], d["outcome"]) for k, d in events_of(turn) if k == "tool_result"]
    assert outcomes == [
        ("mcp__shoptools__fail", "error"),
        ("mcp__shoptools__slow", "timeout"),
        ("mcp__shoptools__huge", "ok"),
    ]
    assert "hunter2" not in json.dumps(events_of(turn)) + fail


def test_a_server_that_goes_away_mid_call_fails_that_call_only(
    openai_server, tool_bot, mcp_fake, make_chatbot
):
    with FakeMCPServer(**{"X-Api-Key": KEY}) as other:
        connected(mcp_fake, name="doomed")
        connected(other, name="steady")
        bot = tool_bot(["mcp__doomed__vanish", "mcp__steady__add", "opening_hours"])
        openai_server.configure(
            script=[
                {
                    "tool_calls": [
                        {"name": "mcp__doomed__vanish"},
                        {"name": "mcp__steady__add", "arguments": {"a": 2, "b": 3}},
                        {"name": "opening_hours"},
                    ]
                }
            ]
        )

        turn = run_turn(bot, "Go")

    assert turn.status == "completed"
    vanish, add, hours = tool_results(openai_server)
    assert "could not be reached or stopped answering" in json.loads(vanish)["error"]
    assert add == "5"
    assert "open_now" in json.loads(hours)
    results = [(d["tool"], d["ok"]) for k, d in events_of(turn) if k == "tool_result"]
    assert results == [
        ("mcp__doomed__vanish", False),
        ("mcp__steady__add", True),
        ("opening_hours", True),
    ]


def test_another_shops_server_and_http_tool_are_never_a_bots_tools(make_chatbot):
    from accounts.models import Shop
    from tools.models import ChatbotTools, HttpTool
    from tools.selectors import toolset_for_turn

    other = Shop.objects.create(slug="other-shop", name="Other shop")
    McpServer.objects.create(
        shop=other,
        name="theirs",
        url="https://theirs.example/mcp",
        tools_cache=[{"name": "add", "description": "", "input_schema": {"type": "object"}}],
    )
    HttpTool.objects.create(
        shop=other, name="theirs", description="x", url="https://theirs.example/x"
    )
    bot = make_chatbot()  # in the tests' own shop
    names = ["mcp__theirs__add", "http__theirs"]
    row = ChatbotTools.objects.create(chatbot=bot, tools=names)  # as an import could

    assert toolset_for_turn(chatbot_id=bot.pk) is None
    with pytest.raises(ValidationError) as err:
        row.full_clean()
    assert "mcp__theirs__add" in str(err.value) and "http__theirs" in str(err.value)

"""Turns with tools: a bot on the fake OpenAI-compatible server, run on the worker's runtime."""

from __future__ import annotations

import asyncio
import json

import pytest

from chatbots.models import AIEndpoint
from chatbots.selectors import config_cache_clear
from conversations.models import Message, StreamEvent, Turn
from conversations.runner import turn_run
from conversations.runtime import get_runtime
from monitoring.tests.factories import create_turn
from tools.models import ChatbotTools
from tools.registry import Tool, ToolError, ToolResult, tool_register, tool_unregister


@pytest.fixture(autouse=True)
def _async_unsafe_is_refused(async_unsafe_refused):
    """Every tools test keeps Django's refusal of ORM calls on an event loop."""


class Calls:
    """What the test tools were asked, so a test can tell a tool never ran."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []


@pytest.fixture
def test_tools():
    calls = Calls()

    def tool(name, run, **kw):
        async def recorded(ctx, arguments):
            calls.seen.append((name, arguments))
            return await run(ctx, arguments)

        return Tool(
            name=name,
            description=f"test tool {name}",
            parameters={"type": "object", "properties": {}},
            run=recorded,
            **kw,
        )

    async def echo(ctx, arguments):
        return ToolResult(
            content=json.dumps({"status": "shipped", **arguments}), summary="order found"
        )

    async def slow(ctx, arguments):
        await asyncio.sleep(60)
        return "too late"

    async def boom(ctx, arguments):
        raise RuntimeError("database password is hunter2")

    async def refuses(ctx, arguments):
        raise ToolError("No order with that number.")

    async def huge(ctx, arguments):
        return "x" * 100_000

    tools = [
        tool("echo", echo, redact=frozenset({"email"}), label={"en": "Looking up your order…"}),
        tool("slow", slow),
        tool("boom", boom),
        tool("refuses", refuses),
        tool("huge", huge),
        tool("secret_tool", echo),
    ]
    for t in tools:
        tool_register(t)
    yield calls
    for t in tools:
        tool_unregister(t.name)


@pytest.fixture
def tool_bot(openai_server, make_chatbot, make_endpoint, make_flow):
    def build(tools, **limits):
        endpoint = make_endpoint(kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai_server.url}/v1")
        bot = make_chatbot(public_id="tooled", name="Vinhuset", with_main_flow=False)
        make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        ChatbotTools.objects.create(chatbot=bot, tools=tools, **limits)
        return bot

    return build


def run_turn(bot, question: str) -> Turn:
    turn = create_turn(chatbot=bot)
    Message.objects.filter(pk=turn.user_message_id).update(content=question)
    config_cache_clear()
    runtime = get_runtime()
    runtime.submit(turn_run(runtime, str(turn.pk))).result(90)
    turn.refresh_from_db()
    return turn


def events_of(turn: Turn) -> list[tuple[str, dict]]:
    return [(e.event, e.data) for e in StreamEvent.objects.filter(turn=turn).order_by("seq")]


def answer_of(turn: Turn) -> str:
    return Message.objects.get(pk=turn.assistant_message_id).content

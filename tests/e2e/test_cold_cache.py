"""End to end with cold caches: every flow kind answers when the worker finds neither the bot's
configuration nor its prompt templates in Redis (after an admin save or an expiry).

A cache miss is a different code path from a hit, and in the worker's event loop a database
read on a miss crashed the turn (SynchronousOnlyOperation → INTERNAL_ERROR) while every warm-cache
test passed. Each test opens the widget's WebSocket (which caches the configuration), empties
the configuration and template caches, then sends the message on that socket: nothing between
the emptying and the worker reads the configuration, so the worker's reads are misses.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from chatbots.models import AIEndpoint, Flow, PromptTemplate, TemplateAssignment
from chatbots.selectors import cache_stats, cache_stats_reset, config_cache_clear
from chatbots.tests.factories import (
    create_chatbot,
    create_endpoint,
    create_entry,
    create_flow,
    create_kb,
)
from conversations.models import Turn
from tests.e2e.client import answer_text, assert_gapless, widget_headers
from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BOT_NAME = "Vinhuset"
OVERRIDE = "Vinhuset Aarhus"  # replaces the built-in shop_name (the bot's name) in the prompt
TEMPLATE_TEXT = "You are the assistant of {{shop_name}}. Tone: {{tone}}."
RENDERED = f"You are the assistant of {OVERRIDE}. Tone: friendly."


def flowise_endpoint(server: FakeFlowise) -> AIEndpoint:
    return create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE,
        base_url=server.url,
        api_key="fw-key-0123456789",
        read_timeout=5.0,
        total_timeout=30,
    )


def openai_endpoint(server: FakeOpenAI) -> AIEndpoint:
    return create_endpoint(
        kind=AIEndpoint.Kind.OPENAI,
        base_url=f"{server.url}/v1",
        api_key="sk-cold-0123456789",
        read_timeout=5.0,
        total_timeout=30,
    )


def assign_template(flow: Flow, text: str = TEMPLATE_TEXT, name: str = "voice") -> None:
    template, _ = PromptTemplate.objects.get_or_create(
        shop=flow.chatbot.shop,
        name=name,
        defaults={"text": text, "variables": {"tone": "friendly"}},
    )
    TemplateAssignment.objects.create(
        chatbot=flow.chatbot, flow=flow, template=template, overrides={"shop_name": OVERRIDE}
    )


def chat_with_cold_caches(stack, public_id: str, text: str) -> tuple[list[dict], str]:
    """Send one message the way the widget does, with both caches emptied just before it;
    returns the turn's events (until `end`) and its id."""
    session = httpx.post(
        f"{stack.base_url}/api/sessions",
        json={"chatbot_id": public_id},
        headers=widget_headers(public_id),
        timeout=10,
    )
    assert session.status_code == 201, session.text
    body = session.json()
    url = f"{stack.ws_url}/ws/conversations/{body['sessionId']}/?token={body['conversation_token']}"

    async def scenario() -> tuple[list[dict], str]:
        events: list[dict] = []
        turn_id = ""
        async with websockets.connect(url, open_timeout=10) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            config_cache_clear()
            cache_stats_reset()
            await ws.send(json.dumps({"type": "message", "message_text": text}))
            deadline = time.monotonic() + 30
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                if frame["type"] == "turn":
                    turn_id = frame["turn_id"]
                elif frame["type"] == "error":
                    raise AssertionError(f"error frame: {frame}")
                elif frame["type"] == "event":
                    events.append(frame)
                    if frame["event"] == "end":
                        return events, turn_id

    return asyncio.run(scenario())


def assert_answered(events: list[dict], turn_id: str) -> str:
    assert_gapless(events)
    assert not [e for e in events if e["event"] == "error"], events
    assert events[-1]["data"]["status"] == "completed", events[-1]
    text = answer_text(events)
    assert text
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    assert turn.assistant_message.content == text
    return text


def assert_cold(*, templates: int) -> None:
    """The worker found nothing cached: it read the configuration and each template from
    PostgreSQL. (The configuration may be read again later — a hit — by the turn's analysis.)"""
    stats = cache_stats()
    assert stats["config"]["misses"] >= 1
    assert (stats["template"]["misses"], stats["template"]["hits"]) == (templates, 0)


def builtin_bot(public_id: str) -> Flow:
    bot = create_chatbot(public_id=public_id, name=BOT_NAME, with_main_flow=False)
    kb = create_kb(chatbot=bot, name="faq")
    create_entry(knowledge_base=kb, title="Shipping", text="We ship within two days.")
    return create_flow(chatbot=bot, name="main", is_main=True, knowledge_base=kb)


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "template"])
def test_a_builtin_flow_answers_on_cold_caches(stack, templated):
    flow = builtin_bot("cold-builtin")
    if templated:
        assign_template(flow)  # the builtin answerer quotes; the template is read all the same

    events, turn_id = chat_with_cold_caches(stack, "cold-builtin", "How fast do you ship?")

    assert "We ship within two days." in assert_answered(events, turn_id)
    assert_cold(templates=1 if templated else 0)


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "template"])
def test_a_flowise_flow_answers_on_cold_caches(stack, flowise, templated):
    bot = create_chatbot(public_id="cold-flowise", name=BOT_NAME, with_main_flow=False)
    flow = create_flow(chatbot=bot, name="main", is_main=True, endpoint=flowise_endpoint(flowise))
    if templated:
        assign_template(flow)
    flowise.scenario.tokens = ["Our", " red", " wines", " are", " on", " page", " two."]

    events, turn_id = chat_with_cold_caches(stack, "cold-flowise", "Which red wine?")

    assert assert_answered(events, turn_id) == "Our red wines are on page two."
    sent = flowise.requests[-1].json
    assert sent["question"] == "Which red wine?"
    prompt = (sent.get("overrideConfig") or {}).get("vars", {}).get("prompt")
    assert prompt == (RENDERED if templated else None)
    assert_cold(templates=1 if templated else 0)


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "template"])
def test_an_openai_compatible_flow_answers_on_cold_caches(stack, openai_server, templated):
    bot = create_chatbot(public_id="cold-openai", name=BOT_NAME, with_main_flow=False)
    flow = create_flow(
        chatbot=bot, name="main", is_main=True, endpoint=openai_endpoint(openai_server)
    )
    if templated:
        assign_template(flow)

    events, turn_id = chat_with_cold_caches(stack, "cold-openai", "Do you sell port?")

    assert assert_answered(events, turn_id) == "You asked: Do you sell port?"
    messages = openai_server.requests[-1].json["messages"]
    system = [m["content"] for m in messages if m["role"] == "system"]
    if templated:
        assert system[0] == RENDERED
    else:
        assert not any(OVERRIDE in content for content in system)
    assert_cold(templates=1 if templated else 0)


def test_a_router_flow_routes_to_its_answer_flow_on_cold_caches(stack, flowise, openai_server):
    bot = create_chatbot(public_id="cold-router", name=BOT_NAME, with_main_flow=False)
    create_flow(chatbot=bot, name="main", is_main=True)  # builtin, the fallback
    product = create_flow(
        chatbot=bot, name="flow2", routing_key="product", endpoint=flowise_endpoint(flowise)
    )
    router = create_flow(
        chatbot=bot, name="router", role=Flow.Role.ROUTER, endpoint=openai_endpoint(openai_server)
    )
    assign_template(router, "Route questions for {{shop_name}}: product or order.", "routing")
    assign_template(product)
    flowise.scenario.tokens = ["Try", " the", " Barolo."]

    # The fake router answers "You asked: <question>", which names the routing key.
    events, turn_id = chat_with_cold_caches(stack, "cold-router", "Which product suits fish?")

    assert assert_answered(events, turn_id) == "Try the Barolo."
    metadata = next(e["data"] for e in events if e["event"] == "metadata")
    assert (metadata["route"], metadata["flow"]) == ("product", "flow2")
    router_system = openai_server.requests[-1].json["messages"][0]
    assert router_system == {
        "role": "system",
        "content": f"Route questions for {OVERRIDE}: product or order.",
    }
    assert flowise.requests[-1].json["overrideConfig"]["vars"]["prompt"] == RENDERED
    assert_cold(templates=2)


def test_an_extractor_flow_feeds_the_answer_flow_on_cold_caches(stack, openai_server):
    bot = create_chatbot(public_id="cold-extractor", name=BOT_NAME, with_main_flow=False)
    endpoint = openai_endpoint(openai_server)
    main = create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    extractor = create_flow(
        chatbot=bot, name="metadata", role=Flow.Role.EXTRACTOR, endpoint=endpoint
    )
    assign_template(main, "{{shop_name}} answers; the customer wants {{extracted}}.", "answer")
    assign_template(extractor, "Extract filters for {{shop_name}} as JSON.", "extract")

    # The fake extractor echoes the question, so the JSON in it is what it "extracts".
    events, turn_id = chat_with_cold_caches(stack, "cold-extractor", 'Wine {"color": "red"}')

    assert assert_answered(events, turn_id) == 'You asked: Wine {"color": "red"}'
    metadata = next(e["data"] for e in events if e["event"] == "metadata")
    assert metadata["extracted"] == {"color": "red"}
    extract_call, answer_call = (r.json["messages"] for r in openai_server.requests[-2:])
    assert extract_call[0]["content"] == f"Extract filters for {OVERRIDE} as JSON."
    # The rendered template; it placed the extraction itself, so it is not appended again.
    assert (
        answer_call[0]["content"] == f'{OVERRIDE} answers; the customer wants {{"color": "red"}}.'
    )

    assert_cold(templates=2)


def test_an_openai_flow_with_knowledge_and_tools_answers_on_cold_caches(stack, openai_server):
    # The configuration now carries more than flows: the knowledge base's passages are retrieved
    # before the call, and the toolset (read in the worker's database threads) offers
    # knowledge_search, which the model calls. Every one of these reads is cold here.
    from tools.models import ChatbotTools

    bot = create_chatbot(public_id="cold-tools", name=BOT_NAME, with_main_flow=False)
    kb = create_kb(chatbot=bot, name="faq")
    create_entry(knowledge_base=kb, title="Returns", text="You can return wine within 30 days.")
    flow = create_flow(
        chatbot=bot,
        name="main",
        is_main=True,
        endpoint=openai_endpoint(openai_server),
        knowledge_base=kb,
    )
    assign_template(flow, text="Answer for {{shop_name}} from:\n{{context}}", name="cited")
    ChatbotTools.objects.create(chatbot=bot, tools=["knowledge_search"])
    openai_server.configure(
        script=[{"tool_calls": [{"name": "knowledge_search", "arguments": {"query": "return"}}]}]
    )

    events, turn_id = chat_with_cold_caches(stack, "cold-tools", "Can I return a bottle?")

    assert_answered(events, turn_id)
    kinds = [e["event"] for e in events]
    assert "tool_call" in kinds and "tool_result" in kinds and "source_documents" in kinds
    chats = [r.json for r in openai_server.requests if r.path.endswith("/chat/completions")]
    first_system = [m["content"] for m in chats[0]["messages"] if m["role"] == "system"]
    assert first_system[0].startswith(f"Answer for {OVERRIDE} from:\n")
    assert "You can return wine within 30 days." in first_system[0]
    assert [t["function"]["name"] for t in chats[0]["tools"]] == ["knowledge_search"]
    tool_results = [m for m in chats[-1]["messages"] if m["role"] == "tool"]
    assert "30 days" in tool_results[0]["content"]
    assert_cold(templates=1)

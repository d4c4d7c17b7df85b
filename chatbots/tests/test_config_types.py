"""The configuration's types (chatbots.config_types) say what the cache really holds.

mypy checks the code that reads the configuration against these TypedDicts, but the values come
back from Redis as JSON and from a published version's stored JSON: these tests read them back
as a turn does and compare every key, at every depth, with the keys the types name
(tests/typed_shapes.py).
"""

from __future__ import annotations

import pytest

from chatbots import selectors
from chatbots.config_types import (
    ChatbotAccess,
    ChatbotConfig,
    EndpointConfig,
    FlowConfig,
    PromptTemplateConfig,
)
from chatbots.models import AIEndpoint, Chatbot, TemplateAssignment, TextRule
from chatbots.versions import chatbot_publishing_set
from tests.typed_shapes import shape_problems
from tools.models import ChatbotTools

pytestmark = pytest.mark.django_db


@pytest.fixture
def full_bot(make_chatbot, make_endpoint, make_flow, make_kb, make_template):
    """A bot using every part of the configuration: an OpenAI-compatible main flow with a
    Pinecone knowledge base embedded by another endpoint, a prompt template, a router, a text
    rule and tools."""
    bot = make_chatbot(public_id="typed", with_main_flow=False)
    openai = make_endpoint(kind=AIEndpoint.Kind.OPENAI, default_model="m", api_key="sk-typed-12345")
    kb = make_kb(
        chatbot=bot,
        kind="pinecone",
        index_name="shop",
        host="https://shop.pinecone.example",
        embedding_endpoint=openai,
        embedding_model="text-embedding-3-small",
    )
    main = make_flow(chatbot=bot, name="main", is_main=True, endpoint=openai, knowledge_base=kb)
    make_flow(chatbot=bot, name="router", role="router", endpoint=openai)
    template = make_template(name="voice", text="You speak for {{shop_name}}.")
    TemplateAssignment.objects.create(chatbot=bot, flow=main, template=template, overrides={})
    TextRule.objects.create(chatbot=bot, kind="replace", find="wine", replace="vin")
    ChatbotTools.objects.create(chatbot=bot, tools=["opening_hours"], max_steps=2)
    return bot


def test_the_shape_check_finds_a_missing_key_an_unknown_key_and_a_wrong_scalar():
    endpoint = {"id": "1", "name": "e", "kind": "openai", "base_url": "", "extra": 1}

    assert shape_problems(endpoint, EndpointConfig, "endpoint") == [
        "endpoint.connect_timeout is missing",
        "endpoint.pool_size is missing",
        "endpoint.read_timeout is missing",
        "endpoint.total_timeout is missing",
        "endpoint.extra is not in EndpointConfig",
        "endpoint.id is a str, not a int",
    ]


def test_a_cached_configuration_has_the_keys_its_types_name(full_bot):
    selectors.chatbot_config_get(public_id="typed")  # builds and caches
    cached = selectors.chatbot_config_get(public_id="typed")  # read back from Redis's JSON

    assert cached is not None and cached["flows"][0]["knowledge_base"]["embedding"]
    assert shape_problems(cached, ChatbotConfig) == []


def test_a_turns_configuration_carries_its_templates_text_in_the_shape_its_types_name(full_bot):
    config = selectors.chatbot_turn_config_get(public_id="typed")

    main = next(flow for flow in config["flows"] if flow["name"] == "main")
    assert main["template"]["text"] == "You speak for {{shop_name}}."
    assert shape_problems(config, ChatbotConfig) == []
    assert shape_problems(main, FlowConfig, "main") == []


def test_a_published_versions_configuration_has_the_keys_its_types_name(full_bot):
    chatbot_publishing_set(chatbot=full_bot, publishing=Chatbot.Publishing.REVIEWED)

    live = selectors.chatbot_turn_config_get(public_id="typed")

    assert live["version"] == 1 and live["tools"]["tools"] == ["opening_hours"]
    assert shape_problems(live, ChatbotConfig) == []


def test_the_template_and_access_caches_have_the_keys_their_types_name(full_bot):
    for _ in range(2):  # built, then read back from Redis
        template = selectors.prompt_template_get(shop_id=full_bot.shop_id, name="voice")
        access = selectors.chatbot_access_get(chatbot_id=full_bot.pk)

        assert shape_problems(template, PromptTemplateConfig, "template") == []
        assert shape_problems(access, ChatbotAccess, "access") == []

"""Model factories for tests (plain functions wrapped as fixtures)."""

from __future__ import annotations

import itertools
import uuid

import pytest

from accounts.models import Membership, Shop
from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    KnowledgeEntry,
    PromptTemplate,
)

_seq = itertools.count(1)

__all__ = [
    "create_member",
    "make_chatbot",
    "make_endpoint",
    "make_entry",
    "make_flow",
    "make_kb",
    "make_shop",
    "make_template",
    "shop_for_tests",
]

TEST_SHOP_SLUG = "test-shop"


def shop_for_tests() -> Shop:
    """The shop every factory uses unless told otherwise, so tests that do not care about
    tenants need not name one."""
    shop, _ = Shop.objects.get_or_create(slug=TEST_SHOP_SLUG, defaults={"name": "Test shop"})
    return shop


def create_shop(**kwargs) -> Shop:
    n = next(_seq)
    kwargs.setdefault("slug", f"shop-{n}")
    kwargs.setdefault("name", f"Shop account {n}")
    return Shop.objects.create(**kwargs)


def create_member(*, user, shop: Shop, role: str) -> Membership:
    return Membership.objects.create(user=user, shop=shop, role=role)


def create_template(**kwargs) -> PromptTemplate:
    kwargs.setdefault("name", f"template-{next(_seq)}")
    kwargs.setdefault("text", "You help {{shop_name}}.")
    if "shop" not in kwargs:
        kwargs["shop"] = shop_for_tests()
    return PromptTemplate.objects.create(**kwargs)


def create_endpoint(**kwargs) -> AIEndpoint:
    n = next(_seq)
    kwargs.setdefault("name", f"endpoint-{n}")
    kwargs.setdefault("kind", AIEndpoint.Kind.BUILTIN)
    if kwargs["kind"] != AIEndpoint.Kind.BUILTIN:
        kwargs.setdefault("base_url", "http://127.0.0.1:9")
    if "shop" not in kwargs:
        kwargs["shop"] = shop_for_tests()
    return AIEndpoint.objects.create(**kwargs)


def create_chatbot(*, with_main_flow: bool = True, **kwargs) -> Chatbot:
    n = next(_seq)
    kwargs.setdefault("public_id", f"shop-{n}")
    kwargs.setdefault("name", f"Shop {n}")
    kwargs.setdefault("language", "en")
    kwargs.setdefault("allowed_origins", ["https://shop.example"])
    if "shop" not in kwargs:
        kwargs["shop"] = shop_for_tests()
    chatbot = Chatbot.objects.create(**kwargs)
    if with_main_flow:
        create_flow(chatbot=chatbot, name="main", is_main=True)
    return chatbot


def create_flow(*, chatbot: Chatbot, **kwargs) -> Flow:
    kwargs.setdefault("name", f"flow-{next(_seq)}")
    kwargs.setdefault("role", Flow.Role.ANSWER)
    if "endpoint" not in kwargs:
        kwargs["endpoint"] = create_endpoint(shop=chatbot.shop)
    if kwargs["endpoint"].kind == AIEndpoint.Kind.FLOWISE:
        kwargs.setdefault("target", str(uuid.uuid4()))
    elif kwargs["endpoint"].kind == AIEndpoint.Kind.OPENAI:
        kwargs.setdefault("target", "gpt-4o-mini")
    return Flow.objects.create(chatbot=chatbot, **kwargs)


def create_kb(*, chatbot: Chatbot, **kwargs) -> KnowledgeBase:
    kwargs.setdefault("name", f"kb-{next(_seq)}")
    return KnowledgeBase.objects.create(chatbot=chatbot, **kwargs)


def create_entry(*, knowledge_base: KnowledgeBase, **kwargs) -> KnowledgeEntry:
    kwargs.setdefault("title", f"Entry {next(_seq)}")
    kwargs.setdefault("text", "Some text.")
    return KnowledgeEntry.objects.create(knowledge_base=knowledge_base, **kwargs)


@pytest.fixture
def make_shop(db):
    return create_shop


@pytest.fixture
def make_template(db):
    return create_template


@pytest.fixture
def make_endpoint(db):
    return create_endpoint


@pytest.fixture
def make_chatbot(db):
    return create_chatbot


@pytest.fixture
def make_flow(db):
    return create_flow


@pytest.fixture
def make_kb(db):
    return create_kb


@pytest.fixture
def make_entry(db):
    return create_entry

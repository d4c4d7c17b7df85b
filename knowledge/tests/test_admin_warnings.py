"""The admin says so when a flow's knowledge base cannot reach that flow's answers, and the
knowledge base form takes the retrieval settings (embedding endpoint and model, chunking)."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from chatbots.models import AIEndpoint, KnowledgeBase
from tests.html_form import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def kb_url(kb: KnowledgeBase) -> str:
    return f"/admin/chatbots/knowledgebase/{kb.pk}/change/"


def save_untouched(client, url: str, **changes) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200
    data = form_data(response.content.decode()) | changes
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def pinecone_on_openai(make_chatbot, make_endpoint, make_flow, make_kb):
    bot = make_chatbot(with_main_flow=False)
    endpoint = make_endpoint(kind=AIEndpoint.Kind.OPENAI, base_url="https://llm.example/v1")
    kb = make_kb(
        chatbot=bot,
        name="handbook",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="kb",
        host="https://kb-abc.svc.pinecone.io",
    )
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, knowledge_base=kb)
    return bot, kb, endpoint


def test_a_pinecone_base_without_an_embedding_model_on_an_openai_flow_is_warned_about(
    admin_client, pinecone_on_openai
):
    bot, _, _ = pinecone_on_openai

    said = save_untouched(admin_client, f"/admin/chatbots/chatbot/{bot.pk}/change/")

    assert any(
        "Flow “main” (OpenAI-compatible) cannot search the Pinecone knowledge base “handbook”" in m
        for m in said
    ), said


def test_giving_the_base_an_embedding_model_in_its_form_ends_the_warning(
    admin_client, pinecone_on_openai
):
    _, kb, endpoint = pinecone_on_openai

    said = save_untouched(
        admin_client,
        kb_url(kb),
        embedding_endpoint=str(endpoint.pk),
        embedding_model="text-embedding-3-small",
    )

    kb.refresh_from_db()
    assert (kb.embedding_endpoint, kb.embedding_model) == (endpoint, "text-embedding-3-small")
    assert not any("cannot search" in m for m in said), said


def test_a_router_flow_with_a_knowledge_base_is_warned_about(
    admin_client, make_chatbot, make_flow, make_kb
):
    bot = make_chatbot()
    kb = make_kb(chatbot=bot, name="faq")
    make_flow(chatbot=bot, name="router", role="router", knowledge_base=kb)

    said = save_untouched(admin_client, kb_url(kb))

    assert any("Flow “router” is a router flow" in m for m in said), said


def test_an_overlap_as_long_as_the_chunk_is_refused_on_its_field(
    admin_client, make_chatbot, make_kb
):
    kb = make_kb(chatbot=make_chatbot(), name="faq")
    data = form_data(admin_client.get(kb_url(kb)).content.decode())
    data.update(chunk_size="500", chunk_overlap="500")

    response = admin_client.post(kb_url(kb), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["chunk_overlap"] == [
        "The overlap must be smaller than the chunk."
    ]


def test_a_changed_embedding_endpoint_is_read_again_by_the_next_turn(
    make_chatbot, make_endpoint, make_kb
):
    from chatbots.selectors import chatbot_config_get

    bot = make_chatbot()
    endpoint = make_endpoint(kind=AIEndpoint.Kind.OPENAI, base_url="https://old.example/v1")
    kb = make_kb(chatbot=bot, embedding_endpoint=endpoint, embedding_model="m")
    flow = bot.flows.get()
    flow.knowledge_base = kb
    flow.save()
    cached = chatbot_config_get(public_id=bot.public_id)
    assert cached["flows"][0]["knowledge_base"]["embedding"]["base_url"] == "https://old.example/v1"

    endpoint.base_url = "https://new.example/v1"
    endpoint.save()

    config = chatbot_config_get(public_id=bot.public_id)
    assert config["flows"][0]["knowledge_base"]["embedding"]["base_url"] == "https://new.example/v1"

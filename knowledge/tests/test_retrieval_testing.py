"""The admin's retrieval testing page: a question against a knowledge base, each method's passages
with scores, the one the bot uses marked, and the context its answer flow would receive."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import Membership
from chatbots.models import AIEndpoint, KnowledgeBase
from chatbots.tests.factories import create_shop
from knowledge.models import KnowledgeDocument
from knowledge.tests.conftest import process
from tests.fakes.pinecone import FakePinecone

pytestmark = pytest.mark.django_db

URL = "/admin/knowledge/knowledgedocument/retrieval-test/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def guide_kb(openai_server, builtin_kb, make_endpoint):
    builtin_kb.embedding_endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai_server.url}/v1"
    )
    builtin_kb.embedding_model = "text-embedding-3-small"
    builtin_kb.save()
    document = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb,
        title="Guide",
        text="# Gift cards\n\nGift cards are valid for three years.\n\n# Storage\n\nKeep wine cool.",
    )
    assert process(document) == "ready"
    return builtin_kb


@pytest.mark.usefixtures("pgvector")
def test_a_question_shows_each_method_and_what_the_bot_gets(admin_client, guide_kb):
    page = admin_client.get(f"/admin/chatbots/knowledgebase/{guide_kb.pk}/change/")
    assert f'{URL}?knowledge_base={guide_kb.pk}"'.encode() in page.content

    response = admin_client.post(
        URL,
        {"knowledge_base": guide_kb.pk, "question": "How long are gift cards valid?", "top_k": 3},
    )

    assert response.status_code == 200
    result = response.context["result"]
    assert set(result.methods) == {"fulltext", "vector", "hybrid"}
    assert result.used == "hybrid"
    assert result.methods["hybrid"][0].title == "Guide › Gift cards"
    assert result.context.startswith("Knowledge base passages (cite them as [n]):\n\n[1] Guide")
    html = response.content.decode()
    assert "hybrid — what the bot uses" in html
    assert "Gift cards are valid for three years." in html


def test_opening_the_page_retrieves_nothing_until_the_form_is_sent(
    admin_client, guide_kb, openai_server
):
    before = len(openai_server.requests)  # the ingestion's

    response = admin_client.get(f"{URL}?knowledge_base={guide_kb.pk}")

    assert response.status_code == 200
    assert response.context["result"] is None
    assert len(openai_server.requests) == before


def test_a_base_without_an_embedding_model_says_it_searches_full_text_only(
    admin_client, builtin_kb
):
    KnowledgeDocument.objects.create(knowledge_base=builtin_kb, title="T", text="Corkage is free.")
    process(KnowledgeDocument.objects.get())

    response = admin_client.post(
        URL, {"knowledge_base": builtin_kb.pk, "question": "corkage", "top_k": 5}
    )

    result = response.context["result"]
    assert set(result.methods) == {"fulltext"}
    assert result.notes == ["No embedding model: the bot searches full-text only."]


def test_a_pinecone_base_is_queried_with_its_key_and_namespace(
    admin_client, openai_server, builtin_kb, make_endpoint, make_kb
):
    with FakePinecone() as pinecone:
        pinecone.configure(api_key="pc-key-0123456789")
        kb = make_kb(
            chatbot=builtin_kb.chatbot,
            name="index",
            kind=KnowledgeBase.Kind.PINECONE,
            index_name="kb",
            host=pinecone.url,
            api_key="pc-key-0123456789",
            namespace="faq",
            embedding_endpoint=make_endpoint(
                kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai_server.url}/v1"
            ),
            embedding_model="text-embedding-3-small",
        )

        response = admin_client.post(
            URL, {"knowledge_base": kb.pk, "question": "returns?", "top_k": 2}
        )

        [query] = [r for r in pinecone.requests if r.path == "/query"]
    assert (query.json["namespace"], query.json["topK"]) == ("faq", 2)
    result = response.context["result"]
    assert result.used == "pinecone"
    assert [p.chunk_id for p in result.methods["pinecone"]] == ["handbook.pdf#1", "handbook.pdf#2"]


def test_another_shop_s_knowledge_base_cannot_be_chosen(client, builtin_kb):
    other_shop = create_shop(name="Other", slug="other")
    user = User.objects.create_user("owner-of-other", password="pw", is_staff=True)
    Membership.objects.create(user=user, shop=other_shop, role="owner")
    client.force_login(user)

    response = client.post(URL, {"knowledge_base": builtin_kb.pk, "question": "x", "top_k": 5})

    assert response.status_code == 200
    assert response.context["result"] is None
    assert "knowledge_base" in response.context["form"].errors
    assert builtin_kb not in response.context["form"].fields["knowledge_base"].queryset

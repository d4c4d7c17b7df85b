"""Embeddings and hybrid ranking: chunks are embedded in batches at ingestion, questions at
retrieval; full-text and vector rankings are fused (RRF); without pgvector, full-text alone."""

from __future__ import annotations

import pytest
from django.db import connection

from chatbots.models import AIEndpoint, KnowledgeBase
from knowledge.models import KnowledgeDocument
from knowledge.retrieval import (
    FULLTEXT,
    HYBRID,
    VECTOR,
    builtin_rankings,
    rrf_fuse,
    vector_search_available,
)
from knowledge.tests.conftest import process
from tests.fakes.embeddings import embed_text
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db

GUIDE = """# Returns
Send the bottle back within 30 days and we refund the full price.

# Delivery
GLS brings parcels in two to four working days.

# Tastings
Every Friday at 17 the shop opens three bottles for everyone.

# Gift cards
Gift cards are valid for three years and work online and in the shop.

# Storage
Keep wine lying down in a cool, dark place.
"""


@pytest.fixture
def embedded_kb(openai_server, make_chatbot, make_endpoint, make_kb):
    bot = make_chatbot(public_id="hybrid-bot", language="en")
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai_server.url}/v1", api_key="sk-embed-123456"
    )
    return make_kb(
        chatbot=bot,
        name="guide",
        kind=KnowledgeBase.Kind.BUILTIN,
        embedding_endpoint=endpoint,
        embedding_model="text-embedding-3-small",
    )


def embed_requests(server: FakeOpenAI) -> list[list[str]]:
    return [r.json["input"] for r in server.requests if r.path == "/v1/embeddings"]


def rankings(kb: KnowledgeBase, question: str, limit: int = 3) -> dict[str, list[dict]]:
    return builtin_rankings(
        chatbot_id=kb.chatbot_id,
        search_config="english",
        question=question,
        knowledge_base_id=kb.pk,
        vector=embed_text(question),
        model="text-embedding-3-small",
        limit=limit,
    )


def test_chunks_are_embedded_in_batches_at_ingestion_with_their_headings(
    openai_server, embedded_kb, settings
):
    settings.KNOWLEDGE_EMBEDDING_BATCH = 2
    document = KnowledgeDocument.objects.create(
        knowledge_base=embedded_kb, title="Guide", text=GUIDE
    )

    assert process(document) == "ready"

    batches = embed_requests(openai_server)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert batches[0][0] == (
        "Returns\nSend the bottle back within 30 days and we refund the full price."
    )
    chunk = document.chunks.get(position=0)
    assert chunk.embedding_model == "text-embedding-3-small"
    assert chunk.embedding == pytest.approx(embed_text(batches[0][0]))
    auth = {r.headers["authorization"] for r in openai_server.requests}
    assert auth == {"Bearer sk-embed-123456"}


def test_a_failing_embedding_endpoint_fails_the_upload_and_keeps_the_old_chunks(
    openai_server, embedded_kb
):
    document = KnowledgeDocument.objects.create(
        knowledge_base=embedded_kb, title="Guide", text=GUIDE
    )
    assert process(document) == "ready"
    openai_server.configure(api_key="another-key")
    KnowledgeDocument.objects.filter(pk=document.pk).update(text="# New\nNew text.")

    assert process(document) == "failed"

    assert (
        document.error == "Embedding the chunks failed: The embedding endpoint answered HTTP 401."
    )
    assert document.chunks.count() == 5
    assert "sk-embed-123456" not in document.error


@pytest.mark.usefixtures("pgvector")
def test_hybrid_fuses_both_rankings_and_keeps_each_method_s_place(openai_server, embedded_kb):
    document = KnowledgeDocument.objects.create(
        knowledge_base=embedded_kb, title="Guide", text=GUIDE
    )
    process(document)

    found = rankings(embedded_kb, "How long are gift cards valid?")

    assert set(found) == {FULLTEXT, VECTOR, HYBRID}
    assert found[VECTOR][0]["title"] == "Guide › Gift cards"
    scores = [m["rank"] for m in found[VECTOR]]  # cosine similarity, best first, none unrelated
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.25
    assert "Guide › Storage" not in [m["title"] for m in found[VECTOR]]
    best = found[HYBRID][0]
    assert best["title"] == "Guide › Gift cards"
    assert best["ranks"] == {FULLTEXT: 1, VECTOR: 1}
    assert best["rank"] == round(2 / 61, 5)


def test_rrf_rewards_agreement_over_one_method_s_first_place():
    a, b, c = ({"chunk_id": x, "title": x, "text": x} for x in "abc")
    fused = rrf_fuse({FULLTEXT: [a, b], VECTOR: [c, b]}, limit=3)
    assert [m["chunk_id"] for m in fused] == ["b", "a", "c"]


@pytest.mark.usefixtures("pgvector")
def test_without_pgvector_retrieval_is_full_text_alone(openai_server, embedded_kb):
    document = KnowledgeDocument.objects.create(
        knowledge_base=embedded_kb, title="Guide", text=GUIDE
    )
    process(document)
    assert vector_search_available()
    with connection.cursor() as cursor:
        # Inside the test's transaction, rolled back after it: a server without the extension.
        cursor.execute("DROP EXTENSION vector CASCADE")

    assert not vector_search_available()
    found = rankings(embedded_kb, "How long are gift cards valid?")

    assert set(found) == {FULLTEXT}
    assert found[FULLTEXT][0]["title"] == "Guide › Gift cards"


def test_switching_vector_search_off_leaves_full_text(openai_server, embedded_kb, settings):
    settings.KNOWLEDGE_VECTOR_SEARCH = False
    assert set(rankings(embedded_kb, "gift cards")) == {FULLTEXT}

"""End to end, the issue's "done when": staff upload the shop's FAQ PDF, the background worker
reads and embeds it, and a customer's question on an OpenAI-compatible bot whose answer is only
in that PDF is answered with it, citing it in `source_documents` (real Daphne, real Celery
worker, fake OpenAI for chat and embeddings)."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.core.files.base import ContentFile
from django.db import transaction

from chatbots.models import AIEndpoint, KnowledgeBase
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow, create_kb
from knowledge.models import KnowledgeDocument
from knowledge.retrieval import vector_search_available
from knowledge.services import document_submit
from knowledge.tests.conftest import pdf_bytes
from tests.e2e.client import answer_text, assert_gapless, post_message, ws_events

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAQ = ["Corkage is 50 kroner per bottle, and you may bring at most two bottles per table."]


@pytest.fixture
def faq_document():
    documents = []
    yield documents
    with transaction.atomic():
        for document in documents:
            document.delete()  # and its file, after the commit


def wait_until_read(document: KnowledgeDocument, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.status in ("ready", "failed"):
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not read the document in {timeout}s ({document.status})")


def test_an_uploaded_faq_pdf_answers_a_question_on_an_openai_bot_with_its_source(
    stack, openai_server, faq_document
):
    endpoint = create_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url=f"{openai_server.url}/v1", read_timeout=5.0
    )
    bot = create_chatbot(public_id="corkage", with_main_flow=False)
    kb = create_kb(
        chatbot=bot,
        name="faq",
        kind=KnowledgeBase.Kind.BUILTIN,
        embedding_endpoint=endpoint,
        embedding_model="text-embedding-3-small",
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, knowledge_base=kb)

    with transaction.atomic():  # as the admin's save: the task is sent after the commit
        document = KnowledgeDocument(knowledge_base=kb, title="Shop FAQ")
        document.file.save("faq.pdf", ContentFile(pdf_bytes(FAQ)), save=False)
        document.save()
        faq_document.append(document)
        document_submit(document=document)
    wait_until_read(document)
    assert (document.status, document.progress, document.chunk_count) == ("ready", 100, 1)
    assert document.chunks.get().embedding_model == "text-embedding-3-small"

    reply = post_message(stack.base_url, "corkage", "How much is corkage?")
    events = asyncio.run(ws_events(reply))

    assert_gapless(events)
    assert answer_text(events) == "You asked: How much is corkage?"
    [sources] = [e["data"]["documents"] for e in events if e["event"] == "source_documents"]
    assert [s["metadata"]["title"] for s in sources] == ["Shop FAQ › Page 1"]
    # Hybrid where the server has pgvector (the embedded one of ./run test), full-text alone
    # where it has not: the answer and its source are the same either way.
    assert sources[0]["metadata"]["method"] == (
        "hybrid" if vector_search_available() else "fulltext"
    )
    chat = [r.json for r in openai_server.requests if r.path == "/v1/chat/completions"][-1]
    system = "\n".join(m["content"] for m in chat["messages"] if m["role"] == "system")
    assert FAQ[0] in system

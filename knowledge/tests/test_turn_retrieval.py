"""Knowledge reaches every endpoint kind: a turn of an OpenAI-compatible flow gets its knowledge
base's passages in its request, cites them in `source_documents` and stores them with the answer.

The turns run on the worker's real runtime (event loop + database threads) with empty caches,
against the fake OpenAI and fake Pinecone servers over HTTP.
"""

from __future__ import annotations

import pytest

from chatbots.models import AIEndpoint, KnowledgeBase, PromptTemplate, TemplateAssignment
from chatbots.selectors import config_cache_clear
from chatbots.tests.factories import shop_for_tests
from conversations.models import Message, StreamEvent, Turn
from conversations.runner import turn_run
from conversations.runtime import get_runtime
from monitoring.tests.factories import create_turn
from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI
from tests.fakes.pinecone import FakePinecone

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("async_unsafe_refused"),
]

RETURNS = "Returns are free within 30 days of delivery; use the label in the parcel."
SHIPPING = "Parcels ship in two days with GLS."


@pytest.fixture
def pinecone_server():
    with FakePinecone() as server:
        yield server


def openai_endpoint(make_endpoint, server, **kw) -> AIEndpoint:
    return make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url=f"{server.url}/v1", api_key="sk-test-123456", **kw
    )


def ask(bot, question: str) -> Turn:
    turn = create_turn(chatbot=bot)
    Message.objects.filter(pk=turn.user_message_id).update(content=question)
    config_cache_clear()
    runtime = get_runtime()
    assert runtime.submit(turn_run(runtime, str(turn.pk))).result(60) == "completed"
    turn.refresh_from_db()
    return turn


def events_of(turn: Turn, kind: str) -> list[dict]:
    return list(
        StreamEvent.objects.filter(turn_id=turn.pk, event=kind)
        .order_by("seq")
        .values_list("data", flat=True)
    )


def chat_requests(server: FakeOpenAI) -> list[dict]:
    return [r.json for r in server.requests if r.path.endswith("/chat/completions")]


def system_message(server: FakeOpenAI) -> str:
    messages = chat_requests(server)[-1]["messages"]
    return "\n".join(m["content"] for m in messages if m["role"] == "system")


@pytest.fixture
def faq_bot(openai_server, make_chatbot, make_endpoint, make_flow, make_kb, make_entry):
    bot = make_chatbot(public_id="faq-bot", with_main_flow=False)
    kb = make_kb(chatbot=bot, name="faq", kind=KnowledgeBase.Kind.BUILTIN)
    make_entry(knowledge_base=kb, title="Returns", text=RETURNS)
    make_entry(knowledge_base=kb, title="Shipping", text=SHIPPING)
    endpoint = openai_endpoint(make_endpoint, openai_server)
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint, knowledge_base=kb)
    return bot


def test_an_openai_flow_with_a_builtin_knowledge_base_gets_the_passages_and_cites_them(
    openai_server, faq_bot
):
    turn = ask(faq_bot, "How do returns work?")

    system = system_message(openai_server)
    assert "[1] Returns\n" + RETURNS in system
    assert SHIPPING not in system  # only what matches the question
    [event] = events_of(turn, "source_documents")
    [document] = event["documents"]
    assert document["pageContent"] == RETURNS
    assert document["metadata"]["title"] == "Returns"
    assert document["metadata"]["method"] == "fulltext"
    assert document["metadata"]["score"] > 0
    assert document["metadata"]["snippet"] == RETURNS
    # The stored answer keeps them (the transcript and analytics' context chunks read them).
    assert turn.assistant_message.metadata["sources"] == event["documents"]
    assert turn.route["context"]["knowledge"] == {"method": "fulltext", "passages": 1}


def test_a_question_the_knowledge_base_does_not_cover_gets_no_context_and_no_sources(
    openai_server, faq_bot
):
    turn = ask(faq_bot, "Do you sell gift cards?")

    assert "Knowledge base passages" not in system_message(openai_server)
    assert events_of(turn, "source_documents") == []
    assert "sources" not in turn.assistant_message.metadata
    assert turn.route["context"]["knowledge"] == {"method": "fulltext", "passages": 0}


def test_a_prompt_template_gets_the_passages_as_context_and_the_sources_as_a_list(
    openai_server, faq_bot
):
    template = PromptTemplate.objects.create(
        shop=shop_for_tests(),
        name="with-sources",
        text="Answer from this:\n{{context}}\nCite: {{sources}}",
    )
    flow = faq_bot.flows.get(name="main")
    TemplateAssignment.objects.create(chatbot=faq_bot, flow=flow, template=template)

    ask(faq_bot, "How do returns work?")

    system = system_message(openai_server)
    assert system.startswith("Answer from this:\nKnowledge base passages (cite them as [n]):")
    assert "Cite: [1] Returns" in system
    # The template placed the passages: they are not appended after it a second time.
    assert system.count(RETURNS) == 1


def test_the_context_stays_within_the_token_budget(openai_server, faq_bot, settings):
    settings.KNOWLEDGE_CONTEXT_TOKENS = 25  # 100 characters: the first passage, cut
    kb = faq_bot.knowledge_bases.get()
    kb.entries.filter(title="Shipping").update(text=SHIPPING + " Returns " * 3)
    from chatbots.services import knowledge_entries_reindex

    knowledge_entries_reindex(chatbot=faq_bot)

    turn = ask(faq_bot, "returns returns shipping")

    [event] = events_of(turn, "source_documents")
    assert len(event["documents"]) == 1
    context = system_message(openai_server).split("(cite them as [n]):\n\n", 1)[1]
    assert len(context) <= 100
    assert "[2]" not in context


def pinecone_kb(make_kb, bot, server, **kw) -> KnowledgeBase:
    """The bot's "handbook" knowledge base: the index "kb" on the fake Pinecone `server`."""
    return make_kb(
        chatbot=bot,
        name="handbook",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="kb",
        host=server.url,
        api_key="pc-key-0123456789",
        **kw,
    )


@pytest.fixture
def pinecone_bot(openai_server, pinecone_server, make_chatbot, make_endpoint, make_flow, make_kb):
    def make(*, embedding: bool = True, namespace: str = "faq-da"):
        bot = make_chatbot(public_id="pinecone-bot", with_main_flow=False)
        endpoint = openai_endpoint(make_endpoint, openai_server)
        kb = pinecone_kb(
            make_kb,
            bot,
            pinecone_server,
            namespace="default-ns",
            embedding_endpoint=endpoint if embedding else None,
            embedding_model="text-embedding-3-small" if embedding else "",
        )
        make_flow(
            chatbot=bot,
            name="main",
            is_main=True,
            endpoint=endpoint,
            knowledge_base=kb,
            namespace=namespace,
            top_k=2,
        )
        return bot

    return make


def test_a_pinecone_knowledge_base_on_an_openai_flow_is_queried_with_its_key_namespace_and_top_k(
    openai_server, pinecone_server, pinecone_bot
):
    pinecone_server.configure(api_key="pc-key-0123456789")
    turn = ask(pinecone_bot(), "Can I return a bottle?")

    [embed] = [r for r in openai_server.requests if r.path == "/v1/embeddings"]
    assert embed.json == {"model": "text-embedding-3-small", "input": ["Can I return a bottle?"]}
    [query] = [r for r in pinecone_server.requests if r.path == "/query"]
    assert query.headers["api-key"] == "pc-key-0123456789"
    assert query.json["namespace"] == "faq-da"
    assert query.json["topK"] == 2
    assert len(query.json["vector"]) == 1536
    system = system_message(openai_server)
    assert "[1] handbook.pdf\nReturns are accepted within 30 days." in system
    assert "[2] handbook.pdf\nShipping takes 2-4 business days." in system
    [event] = events_of(turn, "source_documents")
    assert [d["metadata"]["chunk_id"] for d in event["documents"]] == [
        "handbook.pdf#1",
        "handbook.pdf#2",
    ]
    assert [d["metadata"]["score"] for d in event["documents"]] == [0.82, 0.71]
    assert turn.assistant_message.metadata["sources"] == event["documents"]


def test_a_pinecone_failure_costs_the_customer_the_passages_but_not_the_answer(
    openai_server, pinecone_server, pinecone_bot
):
    pinecone_server.configure(api_key="another-key")
    turn = ask(pinecone_bot(), "Can I return a bottle?")

    assert turn.assistant_message.content == "You asked: Can I return a bottle?"
    assert "Knowledge base passages" not in system_message(openai_server)
    assert turn.route["context"]["knowledge"] == {
        "method": "pinecone",
        "passages": 0,
        "error": "UPSTREAM_AUTH",
    }


def test_a_pinecone_knowledge_base_without_an_embedding_model_is_not_queried_and_says_why(
    openai_server, pinecone_server, pinecone_bot
):
    turn = ask(pinecone_bot(embedding=False), "Can I return a bottle?")

    assert pinecone_server.requests == []
    assert turn.route["context"]["knowledge"]["error"] == "NO_EMBEDDING_MODEL"


def test_a_flowise_flow_with_a_pinecone_knowledge_base_keeps_its_override_config(
    pinecone_server, make_chatbot, make_endpoint, make_flow, make_kb
):
    with FakeFlowise() as flowise:
        bot = make_chatbot(public_id="flowise-bot", with_main_flow=False)
        kb = pinecone_kb(make_kb, bot, pinecone_server)
        endpoint = make_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url)
        make_flow(
            chatbot=bot, name="main", is_main=True, endpoint=endpoint, knowledge_base=kb, top_k=4
        )

        ask(bot, "Can I return a bottle?")

        override = flowise.requests[-1].json["overrideConfig"]
    assert override["pineconeIndex"] == "kb"
    assert override["topK"] == 4
    assert pinecone_server.requests == []  # Flowise queries its index itself


def test_a_question_answered_only_by_an_uploaded_pdf_is_answered_with_it_as_source(
    openai_server, faq_bot
):
    # The "done when": the FAQ PDF is uploaded, read, and the bot cites it.
    from knowledge.tests.conftest import pdf_bytes, process, upload

    kb = faq_bot.knowledge_bases.get()
    document = upload(kb, "faq.pdf", pdf_bytes(["Corkage is 50 kroner per bottle."]), "Shop FAQ")
    document.source_url = "https://vinhuset.example/faq.pdf"
    document.save()
    assert process(document) == "ready"

    turn = ask(faq_bot, "What is the corkage fee?")

    assert "[1] Shop FAQ › Page 1\nCorkage is 50 kroner per bottle." in system_message(
        openai_server
    )
    [event] = events_of(turn, "source_documents")
    [source] = event["documents"]
    assert source["metadata"]["link"] == "https://vinhuset.example/faq.pdf"
    assert source["metadata"]["document_id"] == str(document.pk)
    assert source["metadata"]["position"] == 0


def test_the_builtin_endpoint_quotes_and_cites_an_uploaded_document(make_chatbot, make_kb):
    from knowledge.models import KnowledgeDocument
    from knowledge.tests.conftest import process

    bot = make_chatbot(public_id="builtin-bot")  # its main flow is on the builtin endpoint
    kb = make_kb(chatbot=bot, name="faq")
    flow = bot.flows.get()
    flow.knowledge_base = kb
    flow.save()
    document = KnowledgeDocument.objects.create(
        knowledge_base=kb, title="Tastings", text="# Tastings\n\nTastings are every Friday at 17."
    )
    assert process(document) == "ready"

    turn = ask(bot, "When are the tastings?")

    assert "Tastings are every Friday at 17." in turn.assistant_message.content
    [event] = events_of(turn, "source_documents")
    assert event["documents"][0]["metadata"]["document_id"] == str(document.pk)


@pytest.mark.usefixtures("pgvector")
def test_a_base_with_an_embedding_model_answers_from_hybrid_ranking(
    openai_server, faq_bot, make_endpoint
):
    from knowledge.models import KnowledgeDocument
    from knowledge.tests.conftest import process

    kb = faq_bot.knowledge_bases.get()
    kb.embedding_endpoint = openai_endpoint(make_endpoint, openai_server)
    kb.embedding_model = "text-embedding-3-small"
    kb.save()
    document = KnowledgeDocument.objects.create(
        knowledge_base=kb, title="Guide", text="# Corkage\n\nCorkage is 50 kroner a bottle."
    )
    assert process(document) == "ready"

    turn = ask(faq_bot, "What does corkage cost?")

    assert turn.route["context"]["knowledge"] == {"method": "hybrid", "passages": 1}
    embedded = [r.json["input"] for r in openai_server.requests if r.path == "/v1/embeddings"]
    assert embedded[-1] == ["What does corkage cost?"]
    [event] = events_of(turn, "source_documents")
    [source] = event["documents"]
    assert source["metadata"]["method"] == "hybrid"
    assert source["metadata"]["ranks"] == {"fulltext": 1, "vector": 1}
    assert "Corkage is 50 kroner a bottle." in system_message(openai_server)


def test_the_admin_transcript_shows_the_passages_an_answer_used(openai_server, faq_bot, admin_user):
    from django.test import Client

    from analytics.services.analysis import turn_analyse

    turn = ask(faq_bot, "How do returns work?")
    turn_analyse(turn_id=str(turn.pk))  # what the analytics task does after every turn
    client = Client()
    client.force_login(admin_user)

    page = client.get(f"/admin/conversations/conversation/{turn.conversation_id}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Returns" in html and RETURNS in html

"""Read side of knowledge for the admin: how flows reach their bases, and retrieval testing."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from aiclients.errors import UpstreamError
from aiclients.pinecone import query_index
from chatbots.models import KnowledgeBase
from knowledge.embeddings import embeddings_create
from knowledge.retrieval import (
    FULLTEXT,
    HYBRID,
    PINECONE,
    Passage,
    builtin_rankings,
    context_render,
    passages_of,
    pinecone_passage,
    vector_search_available,
)


@dataclass
class RetrievalTest:
    """What the retrieval testing page shows: each method's passages and what the bot gets."""

    methods: dict[str, list[Passage]] = field(default_factory=dict)
    used: str | None = None  # the method a turn would use
    context: str = ""  # the context block the answer flow would receive
    notes: list[str] = field(default_factory=list)


def knowledge_base_test(
    *, knowledge_base: KnowledgeBase, question: str, top_k: int
) -> RetrievalTest:
    """Run a question against a knowledge base as a turn would, every method side by side.
    Synchronous (admin request): the question's embedding and a Pinecone query are HTTP calls."""
    result = RetrievalTest()
    kb = knowledge_base
    embedding = kb.embedding_endpoint if kb.embedding_endpoint_id else None
    vector = None
    if embedding is not None:
        try:
            [vector] = embeddings_create(
                base_url=embedding.base_url,
                api_key=embedding.api_key.reveal() if embedding.api_key else "",
                model=kb.embedding_model,
                texts=[question],
                timeout=settings.KNOWLEDGE_TIMEOUT_SECONDS,
            )
        except UpstreamError as err:
            result.notes.append(f"The question could not be embedded: {err.message}")
    if kb.kind == KnowledgeBase.Kind.PINECONE:
        if vector is None:
            if embedding is None:
                result.notes.append(
                    "This Pinecone base has no embedding model: only Flowise flows can use it."
                )
            return result
        try:
            answer = query_index(
                api_key=kb.api_key.reveal() if kb.api_key else "",
                host=kb.host,
                vector=vector,
                top_k=top_k,
                namespace=kb.namespace,
                timeout=settings.KNOWLEDGE_TIMEOUT_SECONDS,
            )
        except UpstreamError as err:
            result.notes.append(f"Pinecone: {err.message}")
            return result
        matches = answer.get("matches") if isinstance(answer.get("matches"), list) else []
        result.methods[PINECONE] = [p for p in map(pinecone_passage, matches) if p is not None]
        result.used = PINECONE
    else:
        if embedding is None:
            result.notes.append("No embedding model: the bot searches full-text only.")
        elif vector is not None and not vector_search_available():
            result.notes.append("pgvector is not installed in this database: full-text only.")
        rankings = builtin_rankings(
            chatbot_id=kb.chatbot_id,
            search_config=kb.chatbot.search_config,
            question=question,
            knowledge_base_id=kb.pk,
            vector=vector,
            model=kb.embedding_model,
            limit=top_k,
        )
        for method, matches in rankings.items():
            result.methods[method] = passages_of(matches, method=method, knowledge_base=kb.name)
        result.used = HYBRID if HYBRID in rankings else FULLTEXT
    result.context, _, _ = context_render(
        result.methods.get(result.used, []), budget_tokens=settings.KNOWLEDGE_CONTEXT_TOKENS
    )
    return result

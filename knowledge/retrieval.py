"""The knowledge retriever: what a flow's knowledge base says about a question, for any endpoint.

Builtin knowledge bases are searched in PostgreSQL (full-text in the bot's language); Pinecone
knowledge bases are queried directly with their stored key, host, namespace and the flow's
top-k, the question embedded by the base's embedding endpoint. Flowise flows with a Pinecone
base are left alone: Flowise retrieves itself from the overrideConfig the runner sends. The
builtin endpoint retrieves on its own too (conversations.builtin), with `knowledge_search`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import F, Sum

from aiclients.errors import UpstreamError
from aiclients.pinecone import query_index
from chatbots.config_types import ChatbotConfig, EmbeddingConfig, FlowConfig, KnowledgeBaseConfig
from chatbots.models import KnowledgeBase, KnowledgeEntry
from chatbots.secrets import decrypt
from knowledge.embeddings import embeddings_create_async
from knowledge.models import KnowledgeChunk, KnowledgeDocument, KnowledgeTerm

MIN_RANK = 0.01
WORD = re.compile(r"\w+", re.UNICODE)
CHARS_PER_TOKEN = 4  # the usual estimate for English and Danish prose; no tokenizer needed
SNIPPET_CHARS = 240
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009): 1 / (60 + rank)
CANDIDATES = 20  # at least this many from each method before fusing

# How a flow gets its knowledge (retrieval_method), and the methods a passage can come from.
FULLTEXT = "fulltext"
VECTOR = "vector"
HYBRID = "hybrid"
PINECONE = "pinecone"
UNREACHABLE = "unreachable"  # a Pinecone base with no embedding model on a non-Flowise flow


@dataclass
class Passage:
    """One retrieved piece of knowledge, as the answer cites it."""

    title: str
    text: str
    score: float
    method: str
    link: str = ""
    knowledge_base: str = ""
    entry_id: int | None = None
    chunk_id: str = ""
    document_id: str = ""
    position: int | None = None  # the chunk's place in its document
    ranks: dict[str, int] | None = None  # hybrid: the passage's place in each method's list

    def document(self) -> dict[str, Any]:
        """The `source_documents` shape (Flowise's: pageContent + metadata), as stored."""
        metadata = {
            k: v for k, v in asdict(self).items() if v not in ("", None) and k not in ("text",)
        }
        metadata["snippet"] = _snippet(self.text)
        return {"pageContent": self.text, "metadata": metadata}


@dataclass
class Retrieval:
    method: str | None
    passages: list[Passage]
    error: str = ""


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SNIPPET_CHARS:
        return text
    return text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def knowledge_search(
    *, chatbot_id: int, search_config: str, question: str, knowledge_base_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Best matches among a bot's builtin entries and uploaded chunks, any word of the question
    counting: dicts of title, text, rank, link and where they come from (entry_id, or
    document_id + position), best first."""
    words = [w for w in WORD.findall(question.lower()) if len(w) > 1][:40]
    if not words:
        return []
    query = SearchQuery(" | ".join(words), config=search_config, search_type="raw")
    scope = {"knowledge_base__chatbot_id": chatbot_id}
    if knowledge_base_id is not None:
        scope["knowledge_base_id"] = knowledge_base_id
    chunk_query: SearchQuery | None = query
    if knowledge_base_id is not None:
        pruned = _pruned_query(
            knowledge_base_id=knowledge_base_id, search_config=search_config, question=question
        )
        if pruned is not None:
            # Lexemes are stemmed already: the 'simple' configuration takes them as they are.
            chunk_query = (
                SearchQuery(pruned, config="simple", search_type="raw") if pruned else None
            )
    entries = (
        KnowledgeEntry.objects.filter(
            **scope, knowledge_base__kind=KnowledgeBase.Kind.BUILTIN, search_vector=query
        )
        .annotate(rank=SearchRank(F("search_vector"), query))
        .filter(rank__gte=MIN_RANK)
        .order_by("-rank", "id")
        .values("id", "title", "text", "rank")[:limit]
    )
    found: list[dict[str, Any]] = [
        {"title": row["title"], "text": row["text"], "rank": row["rank"], "entry_id": row["id"]}
        for row in entries
    ]
    if chunk_query is not None:  # None: no word of the question is in the base's chunks
        chunks = (
            KnowledgeChunk.objects.filter(
                **scope, knowledge_base__kind=KnowledgeBase.Kind.BUILTIN, search_vector=chunk_query
            )
            .annotate(rank=SearchRank(F("search_vector"), chunk_query))
            .filter(rank__gte=MIN_RANK)
            .order_by("-rank", "id")
            .values(
                "id",
                "heading",
                "text",
                "rank",
                "position",
                "document_id",
                "document__title",
                "document__source_url",
            )[:limit]
        )
        found.extend({**_chunk_match(row), "rank": row["rank"]} for row in chunks)
    found.sort(key=lambda m: -m["rank"])
    return [{**m, "rank": round(float(m["rank"]), 4)} for m in found[:limit]]


def _quoted(lexeme: str) -> str:
    """A lexeme as a tsquery operand: quoted, with quotes and backslashes escaped."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _pruned_query(*, knowledge_base_id: int, search_config: str, question: str) -> str | None:
    """In a large base, the tsquery (raw, stemmed lexemes) that decides which chunks are ranked;
    None when the base is small enough to rank every match (or its word counts are not there
    yet), "" when none of the question's words is in the base.

    Ranking costs per matching chunk (PostgreSQL reads each one's row and vector), so a large
    base is ranked over a bounded set of candidates, chosen as an IDF-weighted ranking (BM25)
    would weigh the words: rarest first.
    - A word in more than KNOWLEDGE_COMMON_WORD_SHARE of the chunks is dropped: it barely tells
      chunks apart (`ts_rank` has no notion of a word's rarity, so it would let a chunk full of a
      common word outrank one holding the question's rare word).
    - Of the rest, the rarest are ORed while their chunk counts add up to at most
      KNOWLEDGE_RANK_CANDIDATES; the rarest one is always kept. A chunk holding none of them
      would sit below those that do under BM25.
    - When every word is common, chunks holding both of the two rarest are ranked (AND): the
      chunks that hold either one would be most of the base."""
    total = (
        KnowledgeDocument.objects.filter(knowledge_base_id=knowledge_base_id).aggregate(
            n=Sum("chunk_count")
        )["n"]
        or 0
    )
    if total < settings.KNOWLEDGE_PRUNE_FROM_CHUNKS:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT q.lexeme, t.chunks FROM unnest(tsvector_to_array(to_tsvector(%s::regconfig, "
            "%s))) AS q(lexeme) LEFT JOIN knowledge_knowledgeterm t "
            "ON t.knowledge_base_id = %s AND t.lexeme = q.lexeme",
            [search_config, question[:2000], knowledge_base_id],
        )
        counts = sorted(
            ((chunks, lexeme) for lexeme, chunks in cursor.fetchall() if chunks),
            key=lambda c: (c[0], c[1]),
        )
    if not counts:
        known = KnowledgeTerm.objects.filter(knowledge_base_id=knowledge_base_id).exists()
        return "" if known else None
    ceiling = total * settings.KNOWLEDGE_COMMON_WORD_SHARE
    rare = [(chunks, lexeme) for chunks, lexeme in counts if chunks <= ceiling]
    if not rare:
        return " & ".join(_quoted(lexeme) for _, lexeme in counts[:2])
    chosen: list[str] = []
    postings = 0
    for chunks, lexeme in rare:
        if chosen and postings + chunks > settings.KNOWLEDGE_RANK_CANDIDATES:
            break
        chosen.append(lexeme)
        postings += chunks
    return " | ".join(_quoted(lexeme) for lexeme in chosen)


def retrieval_method(flow: FlowConfig) -> str | None:
    """How an answer flow gets its knowledge base's passages; None when it needs no retriever."""
    kb = flow.get("knowledge_base")
    kind = flow["endpoint"]["kind"]
    if not kb or kind == "builtin":
        return None  # the builtin endpoint searches by itself (conversations.builtin)
    if kb["kind"] == "builtin":
        return FULLTEXT
    if kind == "flowise":
        return None  # Flowise queries Pinecone itself from overrideConfig
    return PINECONE if kb.get("embedding") else UNREACHABLE


def vector_search_available() -> bool:
    """pgvector is installed in this database (and not switched off): vector search can run.

    Asked each time (a catalog look-up of well under a millisecond) rather than cached, so an
    extension added or dropped by a DBA is seen without a restart."""
    if not settings.KNOWLEDGE_VECTOR_SEARCH:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


def vector_search(
    *, knowledge_base_id: int, vector: list[float], model: str, limit: int
) -> list[dict[str, Any]]:
    """Chunks of the base nearest to `vector` (cosine), embedded with the same model."""
    dims = len(vector)
    literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    # The dimension is part of the type (vector(N)) and cannot be a bind parameter; it is an
    # int. Same expression and predicate as the HNSW index of migration 0002 for N = 1536.
    sql = f"""
        SELECT c.id, 1 - (c.embedding::vector({dims}) <=> %(q)s::vector({dims})) AS score
        FROM knowledge_knowledgechunk c
        WHERE c.knowledge_base_id = %(kb)s AND c.embedding_model = %(model)s
          AND cardinality(c.embedding) = {dims}
        ORDER BY c.embedding::vector({dims}) <=> %(q)s::vector({dims})
        LIMIT %(limit)s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"q": literal, "kb": knowledge_base_id, "model": model, "limit": limit})
        scored = cursor.fetchall()
    rows = {
        row["id"]: row
        for row in KnowledgeChunk.objects.filter(pk__in=[pk for pk, _ in scored]).values(
            "id",
            "heading",
            "text",
            "position",
            "document_id",
            "document__title",
            "document__source_url",
        )
    }
    # Nearest is not always near: below the floor a chunk is unrelated, whatever its place.
    floor = settings.KNOWLEDGE_MIN_SIMILARITY
    return [
        {**_chunk_match(rows[pk]), "rank": round(float(score), 4)}
        for pk, score in scored
        if score >= floor
    ]


def _chunk_match(row: Mapping[str, Any]) -> dict[str, Any]:
    title = row["document__title"]
    if row["heading"]:
        title = f"{title} › {row['heading']}"
    return {
        "title": title,
        "text": row["text"],
        "chunk_id": str(row["id"]),
        "document_id": str(row["document_id"]),
        "position": row["position"],
        "link": row["document__source_url"],
    }


def _key(match: dict[str, Any]) -> str:
    return match.get("chunk_id") or f"entry:{match.get('entry_id')}"


def rrf_fuse(rankings: dict[str, list[dict[str, Any]]], *, limit: int) -> list[dict[str, Any]]:
    """Reciprocal rank fusion: each list gives 1 / (RRF_K + rank); the sums decide."""
    fused: dict[str, dict[str, Any]] = {}
    for method, matches in rankings.items():
        for rank, match in enumerate(matches, 1):
            item = fused.setdefault(_key(match), {**match, "rank": 0.0, "ranks": {}})
            item["rank"] += 1 / (RRF_K + rank)
            item["ranks"][method] = rank
    ordered = sorted(fused.values(), key=lambda m: -m["rank"])[:limit]
    return [{**m, "rank": round(m["rank"], 5)} for m in ordered]


def builtin_rankings(
    *,
    chatbot_id: int,
    search_config: str,
    question: str,
    knowledge_base_id: int,
    vector: list[float] | None,
    model: str,
    limit: int,
) -> dict[str, list[dict[str, Any]]]:
    """Each method's best matches in a builtin base: full-text always, vector and hybrid when
    the question has a vector and pgvector is there. Used by turns, the retrieval testing page
    and the evaluation command alike."""
    deep = max(limit, CANDIDATES)
    fulltext = knowledge_search(
        chatbot_id=chatbot_id,
        search_config=search_config,
        question=question,
        knowledge_base_id=knowledge_base_id,
        limit=deep,
    )
    rankings = {FULLTEXT: fulltext[:limit]}
    if vector is not None and vector_search_available():
        nearest = vector_search(
            knowledge_base_id=knowledge_base_id, vector=vector, model=model, limit=deep
        )
        rankings[VECTOR] = nearest[:limit]
        rankings[HYBRID] = rrf_fuse({FULLTEXT: fulltext, VECTOR: nearest}, limit=limit)
    return rankings


def passages_of(
    matches: list[dict[str, Any]], *, method: str, knowledge_base: str
) -> list[Passage]:
    return [
        Passage(
            title=m["title"],
            text=m["text"],
            score=m["rank"],
            method=method,
            link=m.get("link") or "",
            knowledge_base=knowledge_base,
            entry_id=m.get("entry_id"),
            chunk_id=m.get("chunk_id", ""),
            document_id=m.get("document_id", ""),
            position=m.get("position"),
            ranks=m.get("ranks"),
        )
        for m in matches
    ]


def builtin_passages(
    *,
    chatbot_id: int,
    search_config: str,
    question: str,
    knowledge_base: KnowledgeBaseConfig,
    vector: list[float] | None,
    limit: int,
) -> tuple[str, list[Passage]]:
    """(method, passages) a turn uses: hybrid when it could run, else full-text."""
    embedding = knowledge_base.get("embedding")
    rankings = builtin_rankings(
        chatbot_id=chatbot_id,
        search_config=search_config,
        question=question,
        knowledge_base_id=knowledge_base["id"],
        vector=vector,
        model=embedding.get("model", "") if embedding else "",
        limit=limit,
    )
    method = HYBRID if HYBRID in rankings else FULLTEXT
    return method, passages_of(
        rankings[method], method=method, knowledge_base=knowledge_base.get("name", "")
    )


async def _question_vector(embedding: EmbeddingConfig, question: str) -> list[float]:
    [vector] = await embeddings_create_async(
        base_url=embedding["base_url"],
        api_key=decrypt(embedding["api_key_stored"]),
        model=embedding["model"],
        texts=[question],
        timeout=embedding.get("timeout") or settings.KNOWLEDGE_TIMEOUT_SECONDS,
    )
    return vector


def pinecone_passage(match: dict[str, Any]) -> Passage | None:
    raw = match.get("metadata")
    metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
    text = next(
        (metadata[k] for k in ("text", "pageContent", "content", "chunk") if metadata.get(k)), ""
    )
    if not isinstance(text, str) or not text.strip():
        return None
    title = next((metadata[k] for k in ("title", "source", "name") if metadata.get(k)), "")
    link = next((metadata[k] for k in ("url", "link") if metadata.get(k)), "")
    if not link and str(metadata.get("source", "")).startswith(("http://", "https://")):
        link = metadata["source"]
    return Passage(
        title=str(title or match.get("id", "")),
        text=text,
        score=round(float(match.get("score") or 0.0), 4),
        method=PINECONE,
        link=str(link),
        chunk_id=str(match.get("id", "")),
    )


async def pinecone_passages(
    *, knowledge_base: KnowledgeBaseConfig, namespace: str, question: str, top_k: int
) -> list[Passage]:
    # Pinecone is the retrieval method only of a base with an embedding (retrieval_method).
    embedding = cast(EmbeddingConfig, knowledge_base["embedding"])
    vector = await _question_vector(embedding, question)
    host = knowledge_base["host"]
    # The synchronous client of "Test connection", in a thread: one query per turn.
    result = await asyncio.to_thread(
        query_index,
        api_key=decrypt(knowledge_base["api_key_stored"]),
        host=host,
        vector=vector,
        top_k=top_k,
        namespace=namespace,
        timeout=settings.KNOWLEDGE_TIMEOUT_SECONDS,
    )
    found = result.get("matches")
    matches: list[Any] = found if isinstance(found, list) else []
    passages = [p for p in map(pinecone_passage, matches) if p is not None]
    for passage in passages:
        passage.knowledge_base = knowledge_base.get("name", "")
    return passages


async def knowledge_retrieve(
    *,
    config: ChatbotConfig,
    flow: FlowConfig,
    question: str,
    run_db: Callable[..., Awaitable[Any]],
) -> Retrieval:
    """The passages an answer flow gets. Never raises for an unreachable service: the answer
    goes on without knowledge and the failure is returned for the turn's record."""
    method = retrieval_method(flow)
    kb = flow.get("knowledge_base")
    if method is None or kb is None:
        return Retrieval(method=None, passages=[])
    if method == UNREACHABLE:
        return Retrieval(method=method, passages=[], error="NO_EMBEDDING_MODEL")
    top_k = flow.get("top_k") or 5
    if method == FULLTEXT:
        vector, error = None, ""
        embedding = kb.get("embedding")
        if embedding:
            try:
                vector = await _question_vector(embedding, question)
            except UpstreamError as err:
                error = err.code  # full-text alone still answers
        used, passages = await run_db(
            builtin_passages,
            chatbot_id=config["id"],
            search_config=config["search_config"],
            question=question,
            knowledge_base=kb,
            vector=vector,
            limit=top_k,
        )
        return Retrieval(method=used, passages=passages, error=error)
    try:
        passages = await pinecone_passages(
            knowledge_base=kb,
            namespace=flow.get("namespace") or kb.get("namespace") or "",
            question=question,
            top_k=top_k,
        )
    except UpstreamError as err:
        return Retrieval(method=method, passages=[], error=err.code)
    return Retrieval(method=method, passages=passages)


def context_render(
    passages: list[Passage], *, budget_tokens: int
) -> tuple[str, str, list[Passage]]:
    """(context, sources, used): numbered passages in rank order until the token budget is
    spent; the passage that crosses it is cut to fit (if a useful part fits), the rest dropped."""
    room = budget_tokens * CHARS_PER_TOKEN
    blocks: list[str] = []
    used: list[Passage] = []
    for passage in passages:
        header = f"[{len(used) + 1}] {passage.title}\n"
        text = passage.text.strip()
        if len(header) + len(text) > room:
            text = text[: max(0, room - len(header))].rsplit(" ", 1)[0]
            if len(text) < 80:
                break
            text += " …"
        blocks.append(header + text)
        used.append(passage)
        room -= len(blocks[-1]) + 2
        if room <= 0:
            break
    if not used:
        return "", "", []
    context = "Knowledge base passages (cite them as [n]):\n\n" + "\n\n".join(blocks)
    sources = "\n".join(
        f"[{i}] {p.title}" + (f" — {p.link}" if p.link else "") for i, p in enumerate(used, 1)
    )
    return context, sources, used

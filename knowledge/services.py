"""Ingestion: a document (file or pasted text) is read, cut into chunks and indexed in Celery.

A new upload or text bumps the document's revision and queues `knowledge.tasks.process_document`
after the commit. The task reads only that revision; its chunks replace the old ones in one
transaction, so a broken upload reports its reason and leaves the chunks that were there.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import F, Value
from django.utils import timezone

from aiclients.errors import UpstreamError
from chatbots.models import Chatbot, KnowledgeBase
from knowledge.chunking import chunks_make
from knowledge.embeddings import embeddings_create
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.parsing import DocumentUnreadable, document_kind, document_sections

logger = logging.getLogger(__name__)


def document_limits_check(*, knowledge_base: KnowledgeBase, size_bytes: int) -> None:
    """DocumentUnreadable when a file is over the size limit (checked before it is read too)."""
    limit = settings.KNOWLEDGE_MAX_FILE_MB * 1024 * 1024
    if size_bytes > limit:
        raise DocumentUnreadable(
            f"The file is {size_bytes / 1024 / 1024:.1f} MB; the limit is "
            f"{settings.KNOWLEDGE_MAX_FILE_MB} MB per file."
        )


def document_submit(*, document: KnowledgeDocument) -> None:
    """Queue the reading of a document's current file or text (after the commit)."""
    from knowledge.tasks import process_document

    # A conditional UPDATE: two saves at once get two revisions, and only the newer is read.
    KnowledgeDocument.objects.filter(pk=document.pk).update(
        revision=F("revision") + 1,
        status=KnowledgeDocument.Status.PENDING,
        progress=0,
        error="",
    )
    document.refresh_from_db(fields=["revision", "status", "progress", "error"])
    document_id, revision = str(document.pk), document.revision
    transaction.on_commit(lambda: process_document.delay(document_id, revision))


def _progress(document_id: str, revision: int, percent: int, **fields) -> bool:
    """Record progress if the document is still at `revision`; False if a newer upload won."""
    return bool(
        KnowledgeDocument.objects.filter(pk=document_id, revision=revision).update(
            progress=percent, updated_at=timezone.now(), **fields
        )
    )


def document_fail(*, document_id: str, revision: int, reason: str) -> str:
    """Mark one revision of a document failed (if it is still the current one)."""
    return _fail(document_id, revision, reason)


def _fail(document_id: str, revision: int, reason: str) -> str:
    _progress(document_id, revision, 0, status=KnowledgeDocument.Status.FAILED, error=reason[:2000])
    return "failed"


def _read(document: KnowledgeDocument) -> tuple[str, bytes]:
    if document.file:
        kind = document_kind(document.file.name)
        document_limits_check(knowledge_base=document.knowledge_base, size_bytes=document.file.size)
        with document.file.open("rb") as handle:
            return kind, handle.read()
    if document.text.strip():
        return KnowledgeDocument.Kind.MARKDOWN, document.text.encode()
    raise DocumentUnreadable("Upload a file or paste some text.")


def kind_of(document: KnowledgeDocument) -> str:
    try:
        return document_kind(document.file.name) if document.file else "text"
    except DocumentUnreadable:
        return "unknown"


class _ProcessFailed(Exception):
    """A step's reason this revision fails; document_process records it on the document."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _document_at(document_id: str, revision: int) -> KnowledgeDocument | None:
    """The document with its base, chatbot and embedding endpoint, if still at `revision`."""
    document = (
        KnowledgeDocument.objects.select_related(
            "knowledge_base__chatbot", "knowledge_base__embedding_endpoint"
        )
        .filter(pk=document_id)
        .first()
    )
    if document is None or document.revision != revision:
        return None
    return document


def _sections_read(document: KnowledgeDocument, document_id: str) -> tuple[str, bytes, list]:
    """(kind, bytes, sections) of the document's file or text; _ProcessFailed with a reason a
    shop's staff can act on when it cannot be read."""
    try:
        kind, data = _read(document)
        return kind, data, document_sections(kind=kind, data=data)
    except DocumentUnreadable as exc:
        raise _ProcessFailed(str(exc)) from exc
    except OSError as exc:
        logger.warning("knowledge document %s: file unreadable: %r", document_id, exc)
        raise _ProcessFailed("The uploaded file could not be opened; upload it again.") from exc
    except Exception as exc:
        # The readers raise DocumentUnreadable for what they foresee; a damaged file can make a
        # library fail in ways nobody foresaw (RecursionError, IndexError…). The document must
        # not stay "Reading" for ever: it fails with a reason, and the traceback is logged.
        logger.exception(
            "knowledge document %s: the %s reader failed", document_id, kind_of(document)
        )
        raise _ProcessFailed(
            f"The file could not be read ({type(exc).__name__}); it may be damaged. Try saving "
            "it again from the program that made it, or paste its text."
        ) from exc


def _chunk_limit_check(kb: KnowledgeBase, document_id: str, chunks: list) -> None:
    """_ProcessFailed when this document's chunks would take the shop over its limit."""
    limit = settings.KNOWLEDGE_MAX_CHUNKS_PER_SHOP
    others = (
        KnowledgeChunk.objects.filter(knowledge_base__chatbot__shop_id=kb.chatbot.shop_id)
        .exclude(document_id=document_id)
        .count()
    )
    if others + len(chunks) > limit:
        raise _ProcessFailed(
            f"This document makes {len(chunks)} chunks and the shop already has {others}; the "
            f"limit is {limit} chunks per shop. Remove documents you no longer need, or use "
            "larger chunks."
        )


def _vectors(
    document_id: str, revision: int, kb: KnowledgeBase, chunks: list
) -> list[list[float]] | None:
    """The chunks' vectors when the base has an embedding model, else None (full-text only)."""
    if not (kb.embedding_endpoint_id and kb.embedding_model):
        return None
    try:
        return _embed(document_id, revision, kb, chunks)
    except UpstreamError as err:
        raise _ProcessFailed(f"Embedding the chunks failed: {err.message}") from err


def _chunks_replace(
    document_id: str,
    revision: int,
    kb: KnowledgeBase,
    chunks: list,
    vectors: list[list[float]] | None,
) -> bool:
    """Replace the document's chunks and mark it ready in one transaction; False (nothing
    written) when a newer revision came in meanwhile."""
    with transaction.atomic():
        # The row lock orders this replacement after any concurrent one of the same document;
        # the revision check then drops the older.
        locked = (
            KnowledgeDocument.objects.select_for_update()
            .filter(pk=document_id, revision=revision)
            .first()
        )
        if locked is None:
            return False
        KnowledgeChunk.objects.filter(document_id=document_id).delete()
        KnowledgeChunk.objects.bulk_create(
            [
                KnowledgeChunk(
                    document_id=document_id,
                    knowledge_base_id=kb.pk,
                    position=position,
                    heading=chunk.heading[:500],
                    text=chunk.text,
                    embedding=vectors[position] if vectors else None,
                    embedding_model=kb.embedding_model if vectors else "",
                )
                for position, chunk in enumerate(chunks)
            ],
            batch_size=500,
        )
        config = Value(kb.chatbot.search_config)
        KnowledgeChunk.objects.filter(document_id=document_id).update(
            search_vector=SearchVector("heading", weight="A", config=config)
            + SearchVector("text", weight="B", config=config)
        )
        locked.status = KnowledgeDocument.Status.READY
        locked.progress = 100
        locked.error = ""
        locked.chunk_count = len(chunks)
        locked.processed_at = timezone.now()
        locked.save(
            update_fields=[
                "status",
                "progress",
                "error",
                "chunk_count",
                "processed_at",
                "updated_at",
            ]
        )
    return True


def document_process(*, document_id: str, revision: int) -> str:
    """Read, cut and index one revision of a document. Returns ready, failed or stale."""
    document = _document_at(document_id, revision)
    if document is None:
        return "stale"
    if not _progress(document_id, revision, 5, status=KnowledgeDocument.Status.PROCESSING):
        return "stale"
    kb = document.knowledge_base
    try:
        kind, data, sections = _sections_read(document, document_id)
        _progress(document_id, revision, 40, kind=kind, size_bytes=len(data))
        chunks = chunks_make(
            sections, size=kb.chunk_size, overlap=min(kb.chunk_overlap, kb.chunk_size - 1)
        )
        _chunk_limit_check(kb, document_id, chunks)
        vectors = _vectors(document_id, revision, kb, chunks)
    except _ProcessFailed as failed:
        return _fail(document_id, revision, failed.reason)
    _progress(document_id, revision, 95)
    if not _chunks_replace(document_id, revision, kb, chunks, vectors):
        return "stale"
    # Outside the replacement's transaction: a stale count only tunes retrieval a little.
    knowledge_terms_refresh(knowledge_base_id=kb.pk)
    return "ready"


def _embed(document_id: str, revision: int, kb: KnowledgeBase, chunks: list) -> list[list[float]]:
    """The chunks' vectors from the base's embedding endpoint, in batches; progress 40 → 95 %."""
    endpoint = kb.embedding_endpoint
    total = len(chunks)
    return embeddings_create(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key.reveal() if endpoint.api_key else "",
        model=kb.embedding_model,
        texts=[f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks],
        timeout=endpoint.read_timeout,
        batch=settings.KNOWLEDGE_EMBEDDING_BATCH,
        on_batch=lambda done: _progress(document_id, revision, 40 + 55 * done // max(total, 1)),
    )


def knowledge_terms_refresh(*, knowledge_base_id: int) -> int:
    """Recount, per word, the chunks of a base that contain it (PostgreSQL's ts_stat)."""
    kb_id = int(knowledge_base_id)  # formatted into ts_stat's query text: an int, nothing else
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM knowledge_knowledgeterm WHERE knowledge_base_id = %s", [kb_id])
        cursor.execute(
            "INSERT INTO knowledge_knowledgeterm (knowledge_base_id, lexeme, chunks) "
            "SELECT %s, left(word, 200), ndoc FROM ts_stat("
            f"'SELECT search_vector FROM knowledge_knowledgechunk WHERE knowledge_base_id = {kb_id}'"
            ") ON CONFLICT DO NOTHING",
            [kb_id],
        )
        return cursor.rowcount


def knowledge_chunks_reindex(*, chatbot_id: int) -> int:
    """Recompute the chunks' full-text vectors after the chatbot's language changed."""
    chatbot = Chatbot.objects.get(pk=chatbot_id)
    config = Value(chatbot.search_config)
    return KnowledgeChunk.objects.filter(knowledge_base__chatbot_id=chatbot_id).update(
        search_vector=SearchVector("heading", weight="A", config=config)
        + SearchVector("text", weight="B", config=config)
    )

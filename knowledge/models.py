"""Documents uploaded (or pasted) into a builtin knowledge base, and the chunks cut from them."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator
from django.db import models


class KnowledgeDocument(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        PROCESSING = "processing", "Reading"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        DOCX = "docx", "Word (DOCX)"
        HTML = "html", "HTML"
        MARKDOWN = "markdown", "Markdown"
        TEXT = "text", "Plain text"
        CSV = "csv", "CSV of questions and answers"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    knowledge_base = models.ForeignKey(
        "chatbots.KnowledgeBase", on_delete=models.CASCADE, related_name="documents"
    )
    title = models.CharField(max_length=300)
    file = models.FileField(
        upload_to="knowledge/%Y/%m/",
        blank=True,
        help_text="PDF, DOCX, HTML, Markdown, text, or a CSV with question and answer columns. "
        "Uploading a new file replaces this document's chunks once it has been read.",
    )
    text = models.TextField(
        "pasted text", blank=True, help_text="Or paste the text here (Markdown headings kept)."
    )
    source_url = models.URLField(
        "link",
        blank=True,
        help_text="Where customers can read this document (shown with the answers citing it).",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, blank=True, editable=False)
    size_bytes = models.PositiveBigIntegerField(default=0, editable=False)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, editable=False
    )
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)], editable=False
    )
    error = models.TextField(blank=True, editable=False)
    chunk_count = models.PositiveIntegerField(default=0, editable=False)
    # Bumped by every upload or text change; a task reads only the revision it was queued for,
    # so a slow task of an older upload cannot overwrite a newer one's chunks.
    revision = models.PositiveIntegerField(default=0, editable=False)
    processed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["knowledge_base", "title"]

    def __str__(self) -> str:
        return self.title


class KnowledgeChunk(models.Model):
    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    # Copied from the document: retrieval filters chunks by base without a join.
    knowledge_base = models.ForeignKey(
        "chatbots.KnowledgeBase", on_delete=models.CASCADE, related_name="chunks"
    )
    position = models.PositiveIntegerField()
    heading = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    # Heading (weight A) and text (B) in the chatbot's language, written with the chunk.
    search_vector = SearchVectorField(null=True)
    # The base's embedding of "heading + text", when it has an embedding model. A float array,
    # not a pgvector column, so the table exists on a server without the extension; vector
    # search casts it (knowledge.retrieval) and is skipped where `vector` is not installed.
    embedding = ArrayField(models.FloatField(), null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            # Invariant: one chunk per place in its document (a replacement deletes first).
            models.UniqueConstraint(
                fields=["document", "position"], name="unique_knowledge_chunk_position"
            ),
        ]
        indexes = [
            # Serves full-text retrieval (search_vector @@ query) within a base.
            GinIndex(fields=["search_vector"], name="knowledge_chunk_search"),
        ]

    def __str__(self) -> str:
        return f"{self.document} #{self.position}"


class KnowledgeTerm(models.Model):
    """How many chunks of a base contain each word (lexeme), refreshed after every ingestion.

    Read by full-text retrieval in large bases: a question's commonest words match most chunks,
    and ranking every match is what made full-text slow (docs/knowledge.md, Benchmark)."""

    knowledge_base = models.ForeignKey(
        "chatbots.KnowledgeBase", on_delete=models.CASCADE, related_name="terms"
    )
    lexeme = models.CharField(max_length=200)
    chunks = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # Invariant and index: one row per word of a base; serves the look-up of a
            # question's words (knowledge.retrieval._informative_lexemes).
            models.UniqueConstraint(
                fields=["knowledge_base", "lexeme"], name="unique_knowledge_term"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lexeme} ({self.chunks})"

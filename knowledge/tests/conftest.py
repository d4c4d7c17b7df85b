"""Fixtures of the knowledge tests: a private MEDIA_ROOT, a builtin knowledge base, documents
made by the tests themselves (a PDF written with fpdf2, a DOCX with python-docx, HTML)."""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile

from chatbots.models import KnowledgeBase
from knowledge.models import KnowledgeDocument
from knowledge.services import document_process, document_submit


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def builtin_kb(make_chatbot, make_kb):
    bot = make_chatbot(public_id="vinhuset", language="en")
    return make_kb(chatbot=bot, name="faq", kind=KnowledgeBase.Kind.BUILTIN)


def pdf_bytes(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def docx_bytes(blocks: list[tuple[str, str]]) -> bytes:
    """(style, text) pairs: style "h1"/"h2" for headings, "" for a paragraph."""
    import docx

    document = docx.Document()
    for style, text in blocks:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1:]))
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def upload(kb: KnowledgeBase, name: str, data: bytes, title: str = "") -> KnowledgeDocument:
    document = KnowledgeDocument(knowledge_base=kb, title=title or name)
    document.file.save(name, ContentFile(data), save=False)
    document.save()
    return document


def process(document: KnowledgeDocument) -> str:
    """What the admin's save does, with the Celery task run here instead of in a worker."""
    document_submit(document=document)
    outcome = document_process(document_id=str(document.pk), revision=document.revision)
    document.refresh_from_db()
    return outcome


@pytest.fixture
def pgvector(db):
    """Skips, saying why, where the test database's server has no pgvector: the embedded
    PostgreSQL of ./run ships it; a PostgreSQL service may need its package (docs/knowledge.md)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            pytest.skip(
                "this PostgreSQL server has no pgvector extension (the embedded one has; "
                "e.g. apt install postgresql-15-pgvector)"
            )

"""Staff upload documents in the admin: the upload is queued, its progress and any failure's
reason show on the document and its knowledge base; what cannot be read is refused in words."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chatbots.models import KnowledgeBase
from knowledge.models import KnowledgeDocument
from knowledge.services import document_process
from knowledge.tests.conftest import pdf_bytes
from tests.html_form import form_data

pytestmark = pytest.mark.django_db

ADD = "/admin/knowledge/knowledgedocument/add/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def add_form(client, **fields) -> dict:
    data = form_data(client.get(ADD).content.decode())
    data.update(fields)
    return data


def test_an_uploaded_pdf_is_queued_then_read_and_its_progress_shown(
    admin_client, builtin_kb, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("faq.pdf", pdf_bytes(["Returns are free within 30 days."]))
    data = add_form(admin_client, knowledge_base=str(builtin_kb.pk), title="FAQ", file=upload)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = admin_client.post(ADD, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    document = KnowledgeDocument.objects.get()
    assert (document.status, document.revision) == ("pending", 1)
    assert len(queued) == 1  # process_document.delay, sent after the commit
    page = admin_client.get(f"/admin/chatbots/knowledgebase/{builtin_kb.pk}/change/")
    assert b'<progress max="100" value="0"' in page.content

    assert document_process(document_id=str(document.pk), revision=1) == "ready"

    page = admin_client.get(f"/admin/knowledge/knowledgedocument/{document.pk}/change/")
    html = page.content.decode()
    assert "Ready" in html and "Returns are free within 30 days." in html


def test_a_file_of_an_unknown_type_is_refused_on_its_field(admin_client, builtin_kb):
    upload = SimpleUploadedFile("prices.xlsx", b"PK\x03\x04")
    data = add_form(admin_client, knowledge_base=str(builtin_kb.pk), title="Prices", file=upload)

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["file"]
    assert error.startswith("“prices.xlsx” is not a format we read.")
    assert not KnowledgeDocument.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_stored(
    admin_client, builtin_kb, settings
):
    settings.KNOWLEDGE_MAX_FILE_MB = 1
    upload = SimpleUploadedFile("big.txt", b"x" * (1024 * 1024 + 1))
    data = add_form(admin_client, knowledge_base=str(builtin_kb.pk), title="Big", file=upload)

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["file"] == [
        "The file is 1.0 MB; the limit is 1 MB per file."
    ]


def test_neither_file_nor_text_is_refused_in_words(admin_client, builtin_kb):
    data = add_form(admin_client, knowledge_base=str(builtin_kb.pk), title="Empty")

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert "Upload a file or paste some text." in response.content.decode()


def test_a_failed_document_shows_its_reason_on_its_knowledge_base(admin_client, builtin_kb):
    KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb,
        title="Scan",
        status="failed",
        error="The PDF has no text to read (a scanned image?).",
    )

    html = admin_client.get(f"/admin/chatbots/knowledgebase/{builtin_kb.pk}/change/").content

    assert b"The PDF has no text to read (a scanned image?)." in html


def test_only_builtin_knowledge_bases_are_offered_for_documents(admin_client, builtin_kb, make_kb):
    pinecone = make_kb(
        chatbot=builtin_kb.chatbot, name="index", kind=KnowledgeBase.Kind.PINECONE, index_name="i"
    )

    form = admin_client.get(ADD).context["adminform"].form
    offered = list(form.fields["knowledge_base"].queryset)

    assert builtin_kb in offered and pinecone not in offered


def test_test_connection_counts_uploaded_documents_as_knowledge(builtin_kb):
    from chatbots.services import ai_endpoint_connection_test, knowledge_base_connection_test
    from knowledge.tests.conftest import process

    document = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb, title="FAQ", text="Returns are free."
    )
    assert knowledge_base_connection_test(knowledge_base=builtin_kb)[0] is False
    process(document)

    assert knowledge_base_connection_test(knowledge_base=builtin_kb) == (
        True,
        "Builtin knowledge base: no connection needed; 0 entries and 1 document chunks to search.",
    )
    endpoint = builtin_kb.chatbot.flows.get().endpoint
    ok, message = ai_endpoint_connection_test(endpoint=endpoint)
    assert ok, message
    assert "vinhuset: 0 knowledge entries, 1 document chunks" in message

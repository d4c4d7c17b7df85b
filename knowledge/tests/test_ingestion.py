"""Ingestion: each file type is read into chunks with their headings; a broken upload reports its
reason and leaves the old chunks; limits are per file and per shop; the chunks are searchable."""

from __future__ import annotations

import itertools

import pytest
from django.core.files.base import ContentFile

from knowledge.chunking import chunks_make
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.parsing import Section
from knowledge.retrieval import knowledge_search
from knowledge.tests.conftest import docx_bytes, pdf_bytes, process, upload

pytestmark = pytest.mark.django_db

HTML = b"""<!doctype html><html><head><title>Help</title><style>p{}</style></head><body>
<header><a href="/">Vinhuset</a> <a href="/shop">Shop</a></header>
<nav><ul><li>Home</li><li>Wines</li><li>Checkout menu</li></ul></nav>
<main>
  <h1>Delivery</h1>
  <p>We deliver with GLS in two to four working days.</p>
  <h2>Abroad</h2>
  <p>Orders to Sweden and Norway take a week.</p>
</main>
<div role="navigation">Breadcrumbs here</div>
<footer>Copyright Vinhuset ApS, cookie settings</footer>
<script>trackVisitor()</script>
</body></html>"""


def chunks_of(document: KnowledgeDocument) -> list[tuple[str, str]]:
    return list(document.chunks.order_by("position").values_list("heading", "text"))


def test_a_pdf_is_read_page_by_page(builtin_kb):
    data = pdf_bytes(["Returns are free within 30 days.", "Gift cards never expire."])
    document = upload(builtin_kb, "faq.pdf", data)

    assert process(document) == "ready"

    assert (document.status, document.progress, document.kind) == ("ready", 100, "pdf")
    assert chunks_of(document) == [
        ("Page 1", "Returns are free within 30 days."),
        ("Page 2", "Gift cards never expire."),
    ]
    assert document.chunk_count == 2


def test_a_docx_keeps_its_headings_with_their_text(builtin_kb):
    data = docx_bytes(
        [
            ("h1", "Returns"),
            ("", "Send the bottle back within 30 days."),
            ("h2", "Damaged bottles"),
            ("", "Send us a photo and we refund at once."),
        ]
    )

    document = upload(builtin_kb, "returns.docx", data)
    assert process(document) == "ready"

    assert chunks_of(document) == [
        ("Returns", "Send the bottle back within 30 days."),
        ("Returns › Damaged bottles", "Send us a photo and we refund at once."),
    ]


def test_html_loses_its_navigation_chrome_and_keeps_its_headings(builtin_kb):
    document = upload(builtin_kb, "delivery.html", HTML)

    assert process(document) == "ready"

    chunks = chunks_of(document)
    assert chunks == [
        ("Delivery", "We deliver with GLS in two to four working days."),
        ("Delivery › Abroad", "Orders to Sweden and Norway take a week."),
    ]
    text = " ".join(t for _, t in chunks)
    for chrome in ("Checkout menu", "Copyright", "Breadcrumbs", "trackVisitor", "Shop"):
        assert chrome not in text


def test_markdown_and_pasted_text_are_cut_under_their_headings(builtin_kb):
    document = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb,
        title="Opening hours",
        text="# Shop\n\nOpen Monday to Friday.\n\n## Holidays\n\nClosed on Christmas Day.",
    )

    assert process(document) == "ready"

    assert chunks_of(document) == [
        ("Shop", "Open Monday to Friday."),
        ("Shop › Holidays", "Closed on Christmas Day."),
    ]


def test_a_csv_of_questions_and_answers_makes_one_chunk_per_pair(builtin_kb):
    data = "spørgsmål;svar\nKan jeg returnere?;Ja, inden for 30 dage.\nLeverer I?;Ja, med GLS.\n"
    document = upload(builtin_kb, "faq.csv", data.encode())

    assert process(document) == "ready"

    assert chunks_of(document) == [
        ("Kan jeg returnere?", "Ja, inden for 30 dage."),
        ("Leverer I?", "Ja, med GLS."),
    ]


def test_long_text_is_cut_to_the_knowledge_base_s_size_with_its_overlap(builtin_kb):
    builtin_kb.chunk_size, builtin_kb.chunk_overlap = 200, 50
    builtin_kb.save()
    sentences = [f"Sentence number {i} talks about wine region {i}." for i in range(40)]
    document = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb, title="Regions", text=" ".join(sentences)
    )

    assert process(document) == "ready"

    texts = [t for _, t in chunks_of(document)]
    assert len(texts) > 5
    assert all(len(t) <= 200 for t in texts)
    for before, after in itertools.pairwise(texts):
        # Each chunk starts with 20 to 50 characters (whole words) the one before ended with.
        assert any(before.endswith(after[:k]) for k in range(20, 51)), (before, after)
    assert all(s in " ".join(texts) for s in sentences)


def test_a_broken_reupload_reports_its_reason_and_leaves_the_old_chunks(builtin_kb):
    document = upload(builtin_kb, "faq.pdf", pdf_bytes(["Returns are free within 30 days."]))
    assert process(document) == "ready"
    old = chunks_of(document)

    document.file.save("faq-v2.pdf", ContentFile(b"%PDF-1.7 this is not really a PDF"))
    assert process(document) == "failed"

    assert document.status == "failed"
    assert "The PDF cannot be read" in document.error
    assert chunks_of(document) == old
    assert document.chunk_count == 1


def test_a_scanned_pdf_without_text_is_refused_with_its_reason(builtin_kb):
    document = upload(builtin_kb, "scan.pdf", pdf_bytes([""]))

    assert process(document) == "failed"

    assert "no text to read" in document.error
    assert not document.chunks.exists()


def test_a_file_over_the_size_limit_is_refused(builtin_kb, settings):
    settings.KNOWLEDGE_MAX_FILE_MB = 1
    document = upload(builtin_kb, "big.txt", b"word " * 300_000)

    assert process(document) == "failed"

    assert document.error == "The file is 1.4 MB; the limit is 1 MB per file."


def test_the_shop_s_chunk_limit_counts_every_document_of_the_shop(builtin_kb, settings):
    settings.KNOWLEDGE_MAX_CHUNKS_PER_SHOP = 3
    first = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb, title="One", text="# A\n\na\n\n# B\n\nb"
    )
    assert process(first) == "ready"
    second = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb, title="Two", text="# C\n\nc\n\n# D\n\nd"
    )

    assert process(second) == "failed"

    assert "the shop already has 2; the limit is 3 chunks per shop" in second.error
    # Re-reading the first document does not count its own old chunks against it.
    assert process(first) == "ready"


def test_a_task_of_an_older_upload_does_not_overwrite_a_newer_one(builtin_kb):
    from knowledge.services import document_process, document_submit

    document = KnowledgeDocument.objects.create(knowledge_base=builtin_kb, title="T", text="old")
    document_submit(document=document)
    old_revision = document.revision
    KnowledgeDocument.objects.filter(pk=document.pk).update(text="new")
    document_submit(document=document)

    assert document_process(document_id=str(document.pk), revision=old_revision) == "stale"
    assert document_process(document_id=str(document.pk), revision=document.revision) == "ready"
    assert chunks_of(document) == [("", "new")]


def test_uploaded_chunks_are_found_with_their_document_heading_and_link(builtin_kb):
    document = upload(
        builtin_kb, "returns.docx", docx_bytes([("h1", "Returns"), ("", "Refunds take five days.")])
    )
    document.source_url = "https://vinhuset.example/help/returns"
    document.save()
    process(document)

    [match] = knowledge_search(
        chatbot_id=builtin_kb.chatbot_id,
        search_config="english",
        question="How long do refunds take?",
        knowledge_base_id=builtin_kb.pk,
        limit=3,
    )

    assert match["title"] == "returns.docx › Returns"
    assert match["text"] == "Refunds take five days."
    assert match["link"] == "https://vinhuset.example/help/returns"
    assert match["position"] == 0


def test_deleting_a_document_deletes_its_chunks_and_its_file(
    builtin_kb, django_capture_on_commit_callbacks
):
    document = upload(builtin_kb, "faq.pdf", pdf_bytes(["Returns are free."]))
    process(document)
    storage, name = document.file.storage, document.file.name

    with django_capture_on_commit_callbacks(execute=True):
        document.delete()

    assert not KnowledgeChunk.objects.exists()
    assert not storage.exists(name)


def test_a_question_answer_pair_is_never_cut_even_past_the_chunk_size():
    long_answer = "word " * 100
    chunks = chunks_make(
        [Section(heading="Q?", text=long_answer.strip(), whole=True)], size=200, overlap=20
    )
    assert [c.text for c in chunks] == [long_answer.strip()]


def test_a_file_that_breaks_its_reader_fails_with_a_reason_instead_of_reading_for_ever(
    builtin_kb,
):
    # One CSV field past the csv module's 128 KB limit: csv.Error, which no reader foresaw.
    data = "question,answer\nWhy?," + "x" * 200_000 + "\n"
    document = upload(builtin_kb, "faq.csv", data.encode())

    assert process(document) == "failed"

    assert document.status == "failed"
    assert document.error.startswith("The file could not be read (Error); it may be damaged.")


def test_a_task_that_stops_unexpectedly_marks_its_document_failed(
    builtin_kb, make_chatbot, settings
):
    from chatbots.models import KnowledgeBase
    from knowledge.services import document_submit
    from knowledge.tasks import process_document

    document = KnowledgeDocument.objects.create(knowledge_base=builtin_kb, title="T", text="x")
    document_submit(document=document)
    builtin_kb.chatbot.delete()  # the base and its document go while the task is queued…
    assert process_document.run(str(document.pk), document.revision) == "stale"

    other = KnowledgeDocument.objects.create(
        knowledge_base=KnowledgeBase.objects.create(chatbot=make_chatbot(), name="kb2"),
        title="T",
        text="x",
    )
    document_submit(document=other)
    settings.KNOWLEDGE_MAX_CHUNKS_PER_SHOP = "not a number"  # …or something breaks mid-way
    assert process_document.run(str(other.pk), other.revision) == "failed"
    other.refresh_from_db()
    assert other.error.startswith("Reading stopped unexpectedly (TypeError).")


def test_in_a_large_base_full_text_ranks_by_the_question_s_rare_words(builtin_kb, settings):
    from knowledge.models import KnowledgeTerm

    settings.KNOWLEDGE_PRUNE_FROM_CHUNKS = 1  # this small base counts as large
    settings.KNOWLEDGE_COMMON_WORD_SHARE = 0.5
    sections = [f"# Wine {i}\n\nEvery wine here is red wine number {i}." for i in range(6)]
    sections.append("# Corkage\n\nCorkage for wine is 50 kroner.")
    document = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb, title="Wines", text="\n\n".join(sections)
    )
    assert process(document) == "ready"
    assert KnowledgeTerm.objects.get(knowledge_base=builtin_kb, lexeme="wine").chunks == 7

    def titles(question: str) -> list[str]:
        found = knowledge_search(
            chatbot_id=builtin_kb.chatbot_id,
            search_config="english",
            question=question,
            knowledge_base_id=builtin_kb.pk,
            limit=10,
        )
        return [m["title"] for m in found]

    # "wine" is in every chunk: only "corkage" decides, so only its chunk is ranked.
    assert titles("What is the wine corkage?") == ["Wines › Corkage"]
    # Only common words: the rarest of them still find something.
    assert titles("red wine") != []
    # Quotes and backslashes in the question are words, not tsquery syntax.
    assert titles("it's o'clock \\\\ wine's corkage'") == ["Wines › Corkage"]


def test_in_a_large_base_only_the_rarest_words_chunks_are_ranked_within_the_budget(
    builtin_kb, settings
):
    settings.KNOWLEDGE_PRUNE_FROM_CHUNKS = 1  # this small base counts as large
    settings.KNOWLEDGE_COMMON_WORD_SHARE = 0.5
    sections = [f"# Wine {i}\n\nEvery wine here is red wine number {i}." for i in range(6)]
    sections.append("# Corkage\n\nCorkage for wine is 50 kroner.")
    sections += [f"# Glass {i}\n\nA glass of wine costs {i} kroner." for i in range(2)]
    document = KnowledgeDocument.objects.create(
        knowledge_base=builtin_kb, title="Wines", text="\n\n".join(sections)
    )
    assert process(document) == "ready"

    def titles(question: str) -> set[str]:
        found = knowledge_search(
            chatbot_id=builtin_kb.chatbot_id,
            search_config="english",
            question=question,
            knowledge_base_id=builtin_kb.pk,
            limit=20,
        )
        return {m["title"] for m in found}

    # "corkage" is in 1 chunk, "glass" in 2: a budget of 2 ranks the rarest word's chunk only…
    settings.KNOWLEDGE_RANK_CANDIDATES = 2
    assert titles("corkage by the glass") == {"Wines › Corkage"}
    # …a budget of 3 both words' chunks; the rarest word is kept even over the budget.
    settings.KNOWLEDGE_RANK_CANDIDATES = 3
    assert titles("corkage by the glass") == {
        "Wines › Corkage",
        "Wines › Glass 0",
        "Wines › Glass 1",
    }
    settings.KNOWLEDGE_RANK_CANDIDATES = 0
    assert titles("corkage by the glass") == {"Wines › Corkage"}
    # Every word common ("wine" in 9 of 9 chunks, "red" in 6): chunks holding both are ranked.
    assert titles("red wine") == {f"Wines › Wine {i}" for i in range(6)}

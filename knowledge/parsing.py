"""Reading uploaded documents into sections (a heading and its text), one reader per format.

Every reader raises DocumentUnreadable with a sentence staff can act on; nothing else escapes
for a bad file (a corrupt PDF, a DOCX that is a renamed ZIP, a CSV without an answer column).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass

KINDS_BY_EXTENSION = {
    "pdf": "pdf",
    "docx": "docx",
    "html": "html",
    "htm": "html",
    "md": "markdown",
    "markdown": "markdown",
    "txt": "text",
    "text": "text",
    "csv": "csv",
}
# HTML elements that are page chrome, not content: dropped before reading.
CHROME = ["nav", "header", "footer", "aside", "script", "style", "noscript", "form", "template"]
CHROME_ROLES = ["navigation", "banner", "contentinfo", "search", "complementary"]
MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
QUESTION_COLUMNS = ("question", "questions", "q", "spørgsmål", "sporgsmal", "title")
ANSWER_COLUMNS = ("answer", "answers", "a", "svar", "text")


class DocumentUnreadable(Exception):
    """The file cannot be read; the message says why, for staff."""


@dataclass
class Section:
    heading: str  # the heading path, e.g. "Returns › Damaged bottles"; "" when none
    text: str
    whole: bool = False  # a question/answer pair: never cut, never merged


def document_kind(filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    kind = KINDS_BY_EXTENSION.get(extension)
    if kind is None:
        raise DocumentUnreadable(
            f"“{filename}” is not a format we read. Upload a PDF, DOCX, HTML, Markdown (.md), "
            "text (.txt) or CSV file."
        )
    return kind


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentUnreadable("The file is not text in UTF-8 or Windows-1252.")


def _clean(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


class _Outline:
    """Sections under a stack of headings (h1 › h2 › …)."""

    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.sections: list[Section] = []
        self.lines: list[str] = []

    def heading(self, level: int, title: str) -> None:
        self.flush()
        self.path = [(lv, t) for lv, t in self.path if lv < level] + [(level, title.strip())]

    def line(self, text: str) -> None:
        if text.strip():
            self.lines.append(text.strip())

    def flush(self) -> None:
        text = _clean("\n\n".join(self.lines))
        self.lines = []
        if text:
            heading = " › ".join(t for _, t in self.path)
            self.sections.append(Section(heading=heading[:500], text=text))


def read_markdown(text: str) -> list[Section]:
    outline = _Outline()
    paragraph: list[str] = []
    for raw in text.splitlines():
        match = MARKDOWN_HEADING.match(raw)
        if match:
            outline.line(" ".join(paragraph))
            paragraph = []
            outline.heading(len(match.group(1)), match.group(2))
        elif raw.strip():
            paragraph.append(raw.strip())
        else:
            outline.line("\n".join(paragraph))
            paragraph = []
    outline.line("\n".join(paragraph))
    outline.flush()
    return outline.sections


def read_html(data: bytes) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for element in soup.find_all(CHROME):
        element.decompose()
    for element in soup.find_all(attrs={"role": CHROME_ROLES}):
        element.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    outline = _Outline()
    blocks = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "dt", "dd", "tr"]
    for element in root.find_all(blocks):
        if element.find_parent(["li", "pre", "blockquote", "tr"]) is not None:
            continue  # read with its block
        if element.name[0] == "h" and element.name[1:].isdigit():
            outline.heading(int(element.name[1:]), element.get_text(" ", strip=True))
        elif element.name == "tr":
            outline.line(
                " | ".join(c.get_text(" ", strip=True) for c in element.find_all(["td", "th"]))
            )
        else:
            outline.line(element.get_text(" ", strip=True))
    outline.flush()
    if not outline.sections:
        # A page of bare text in <div>s: keep what is left after the chrome went.
        text = _clean(root.get_text("\n", strip=True))
        return [Section(heading="", text=text)] if text else []
    return outline.sections


def read_pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentUnreadable("The PDF is password-protected; upload an unprotected copy.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentUnreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentUnreadable(
            f"The PDF cannot be read ({type(exc).__name__}): is it damaged?"
        ) from exc
    sections = [
        Section(heading=f"Page {number}", text=_clean(text))
        for number, text in enumerate(pages, 1)
        if _clean(text)
    ]
    if not sections:
        raise DocumentUnreadable(
            "The PDF has no text to read (a scanned image?). Upload a PDF with selectable text."
        )
    return sections


def read_docx(data: bytes) -> list[Section]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentUnreadable("The file is not a readable Word document (.docx).") from exc
    outline = _Outline()
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = re.match(r"(?:Heading|Overskrift)\s*(\d)", style)
        if level:
            outline.heading(int(level.group(1)), paragraph.text)
        elif style == "Title":
            outline.heading(0, paragraph.text)
        else:
            outline.line(paragraph.text)
    for table in document.tables:
        for row in table.rows:
            outline.line(" | ".join(cell.text.strip() for cell in row.cells))
    outline.flush()
    return outline.sections


def read_csv(text: str) -> list[Section]:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    q = next((i for i, c in enumerate(header) if c in QUESTION_COLUMNS), None)
    a = next((i for i, c in enumerate(header) if c in ANSWER_COLUMNS), None)
    if q is None or a is None:
        raise DocumentUnreadable(
            "The CSV needs a header row with a “question” and an “answer” column "
            "(or “spørgsmål” and “svar”)."
        )
    sections = []
    for row in rows[1:]:
        question = row[q].strip() if q < len(row) else ""
        answer = row[a].strip() if a < len(row) else ""
        if question and answer:
            sections.append(Section(heading=question[:500], text=_clean(answer), whole=True))
    return sections


def document_sections(*, kind: str, data: bytes) -> list[Section]:
    """The sections of a document of `kind` (document_kind); DocumentUnreadable otherwise."""
    if kind == "pdf":
        sections = read_pdf(data)
    elif kind == "docx":
        sections = read_docx(data)
    elif kind == "html":
        sections = read_html(data)
    elif kind == "csv":
        sections = read_csv(_decode(data))
    else:  # markdown and text: plain text keeps its paragraphs, Markdown also its headings
        sections = read_markdown(_decode(data))
    if not sections:
        raise DocumentUnreadable("The document contains no text.")
    return sections

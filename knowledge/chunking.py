"""Cutting sections into chunks of about `size` characters that repeat `overlap` characters of the
chunk before, at paragraph, then sentence, then word boundaries. Each chunk keeps its heading."""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.parsing import Section

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Chunk:
    heading: str
    text: str


def _pieces(text: str, size: int) -> list[tuple[str, str]]:
    """Paragraphs, sentences or words of `text`, each at most `size` characters, with the
    separator that joins each to the one before ("\n\n" between paragraphs, else " ")."""
    out: list[tuple[str, str]] = []
    for paragraph in text.split("\n\n"):
        start = len(out)
        if len(paragraph) <= size:
            out.append((paragraph, "\n\n"))
            continue
        for sentence in SENTENCE_END.split(paragraph):
            if len(sentence) <= size:
                out.append((sentence, " "))
                continue
            words, line = sentence.split(" "), ""
            for word in words:
                while len(word) > size:  # a "word" longer than a chunk (a URL, a table row)
                    if line:
                        out.append((line, " "))
                        line = ""
                    out.append((word[:size], " "))
                    word = word[size:]
                if line and len(line) + 1 + len(word) > size:
                    out.append((line, " "))
                    line = word
                else:
                    line = f"{line} {word}" if line else word
            if line:
                out.append((line, " "))
        if len(out) > start:
            out[start] = (out[start][0], "\n\n")
    return [(p, sep) for p, sep in out if p.strip()]


def _tail(text: str, overlap: int) -> str:
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    cut = text[-overlap:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < len(cut) - 1 else cut


def chunks_make(sections: list[Section], *, size: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in sections:
        if section.whole:
            chunks.append(Chunk(heading=section.heading, text=section.text))
            continue
        current = ""
        for piece, joiner in _pieces(section.text, size):
            if current and len(current) + len(joiner) + len(piece) > size:
                chunks.append(Chunk(heading=section.heading, text=current))
                carried = _tail(current, overlap)
                current = f"{carried} {piece}" if carried else piece
                if len(current) > size:  # the overlap does not fit beside this piece
                    current = piece
            else:
                current = f"{current}{joiner}{piece}" if current else piece
        if current.strip():
            chunks.append(Chunk(heading=section.heading, text=current))
    return chunks

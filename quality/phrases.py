"""Candidate phrases of an answer for a new check: offered to staff to pick, never applied
automatically (a check is only as good as the facts a person chose to pin down)."""

from __future__ import annotations

import re

MAX_SUGGESTIONS = 12
_FACT = re.compile(
    r"https?://\S+[\w/]"  # links
    r"|[\w.+-]+@[\w-]+\.[\w.]+"  # e-mail addresses
    r"|[€$£]\s?\d[\d.,]*"  # amounts
    r"|\d[\d.,:]*\s?(?:%|€|euros?|eur|days?|dagen|hours?|uur|minutes?|minuten|weeks?|weken"
    r"|months?|maanden|years?|jaar|km|kg|g|cm|mm|ml|l)\b"  # numbers with their unit
    r"|\b\d{2,}[\d.,:/-]*\b",  # bare numbers: codes, phone numbers, dates, times
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"[.!?;:\n]+|,\s")


def key_phrases(answer: str) -> list[str]:
    """Facts first (links, e-mail addresses, amounts, numbers with units), then short clauses
    of 2-10 words; duplicates (ignoring case) dropped, at most MAX_SUGGESTIONS."""
    found: list[str] = []
    seen: set[str] = set()

    def add(phrase: str) -> None:
        phrase = " ".join(phrase.split()).strip(" \"'“”()[]-–")
        if phrase and phrase.casefold() not in seen and len(phrase) <= 200:
            seen.add(phrase.casefold())
            found.append(phrase)

    for match in _FACT.finditer(answer or ""):
        add(match.group(0).rstrip(".,"))
    for clause in _CLAUSE.split(answer or ""):
        if 2 <= len(clause.split()) <= 10:
            add(clause)
    return found[:MAX_SUGGESTIONS]

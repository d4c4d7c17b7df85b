"""Judging one answer against one check's rules (a pure function; no database, no network).

The draft/live check run calls evaluate_answer for each check and version; the admin shows each
RuleResult's `why`. Matching ignores case and runs of whitespace, so "Free  shipping\\nover €50"
matches "free shipping over €50". There is no language detector among our dependencies, so the
language rule compares with the language the caller recorded for the answer and says "not
checked" when none was recorded (never a guess).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict. A rule that could not be judged has checked=False and passed=True
    (it never blocks a publish on its own); `why` says so in words."""

    rule: str
    passed: bool
    why: str
    checked: bool = True


def normalise(text: str) -> str:
    """Case-folded, NFKC, whitespace runs collapsed to one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text or "")).strip().casefold()


def _source_titles(sources: list[Any] | None) -> list[str]:
    """Titles of the cited sources, whatever shape they come in: the stored `source_documents`
    ({pageContent, metadata: {title}}), a flat {title}, or a plain string."""
    titles = []
    for source in sources or []:
        if isinstance(source, str):
            titles.append(source)
        elif isinstance(source, dict):
            raw = source.get("metadata")
            meta = raw if isinstance(raw, dict) else {}
            title = source.get("title") or meta.get("title") or meta.get("source") or ""
            titles.append(str(title))
    return titles


def _language_code(value: str | None) -> str:
    """ "nl-NL" and "NL" both mean "nl"."""
    return (value or "").strip().lower().replace("_", "-").split("-")[0]


def _says(said: str, phrase: str) -> bool:
    """Whether the normalised answer `said` contains `phrase` (normalised the same way); a
    phrase that normalises to nothing is never said. One test for must_contain and
    must_not_contain, so the two rules cannot disagree about a phrase."""
    wanted = normalise(phrase)
    return bool(wanted) and wanted in said


def evaluate_answer(
    *, check, answer_text: str, sources: list[Any] | None, handoff: bool, language: str | None
) -> list[RuleResult]:
    """The verdict of each rule the check has, in a fixed order: must_contain (one result per
    phrase), must_not_contain (one per phrase), must_cite_source, expect_handoff,
    expect_language. Rules the check does not use give no result."""
    results = _phrase_results(check, normalise(answer_text))
    for result in (
        _citation_result(check, sources),
        _handoff_result(check, handoff),
        _language_result(check, language),
    ):
        if result is not None:
            results.append(result)
    return results


def _phrase_results(check, said: str) -> list[RuleResult]:
    """One result per must_contain phrase, then one per must_not_contain phrase."""
    results: list[RuleResult] = []
    for phrase in check.must_contain or []:
        found = _says(said, phrase)
        results.append(
            RuleResult(
                "must_contain",
                found,
                f"The answer contains “{phrase}”."
                if found
                else f"The answer does not contain “{phrase}”.",
            )
        )
    for phrase in check.must_not_contain or []:
        found = _says(said, phrase)
        results.append(
            RuleResult(
                "must_not_contain",
                not found,
                f"The answer contains “{phrase}”, which it must not."
                if found
                else f"The answer does not contain “{phrase}”.",
            )
        )
    return results


def _citation_result(check, sources: list[Any] | None) -> RuleResult | None:
    """must_cite_source: a named source must be among the cited titles; without a name, any
    cited source will do. A source title alone turns the rule on."""
    title = (getattr(check, "source_title", "") or "").strip()
    if not (check.must_cite_source or title):
        return None
    if title:
        titles = _source_titles(sources)
        cited = any(normalise(t) == normalise(title) for t in titles)
        why = (
            f"The answer cites “{title}”."
            if cited
            else f"The answer does not cite “{title}”"
            + (f" (it cites: {', '.join(t for t in titles if t)})." if titles else ".")
        )
    else:
        cited = bool(sources)
        why = (
            f"The answer cites {len(sources or [])} source(s)."
            if cited
            else "The answer cites no knowledge source."
        )
    return RuleResult("must_cite_source", cited, why)


def _handoff_result(check, handoff: bool) -> RuleResult | None:
    """expect_handoff: the customer was handed to a person exactly when the check expects it."""
    if check.expect_handoff is None:
        return None
    ok = bool(handoff) == bool(check.expect_handoff)
    if check.expect_handoff:
        why = (
            "The customer was handed to a person."
            if ok
            else "The customer was not handed to a person."
        )
    else:
        why = (
            "The bot answered without a handoff."
            if ok
            else "The customer was handed to a person, which the check does not expect."
        )
    return RuleResult("expect_handoff", ok, why)


def _language_result(check, language: str | None) -> RuleResult | None:
    """expect_language against the language recorded for the answer; none recorded is "not
    checked", never a guess (the module's docstring)."""
    expected = _language_code(check.expect_language)
    if not expected:
        return None
    got = _language_code(language)
    if not got:
        return RuleResult(
            "expect_language",
            True,
            f"Not checked: no language was recorded for this answer (expected {expected}).",
            checked=False,
        )
    ok = got == expected
    return RuleResult(
        "expect_language",
        ok,
        f"The answer is in {got}." if ok else f"The answer is in {got}, not {expected}.",
    )

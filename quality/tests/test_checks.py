"""quality.checks.evaluate_answer: each rule's verdict and its reason, in words."""

from __future__ import annotations

from types import SimpleNamespace

from quality.checks import RuleResult, evaluate_answer, normalise


def check(**rules):
    base = {
        "must_contain": [],
        "must_not_contain": [],
        "must_cite_source": False,
        "source_title": "",
        "expect_handoff": None,
        "expect_language": "",
    }
    return SimpleNamespace(**(base | rules))


def judge(rules, answer="", sources=None, handoff=False, language=None):
    return evaluate_answer(
        check=check(**rules),
        answer_text=answer,
        sources=sources,
        handoff=handoff,
        language=language,
    )


def test_a_check_without_rules_gives_no_results():
    assert judge({}, answer="anything") == []


def test_must_contain_ignores_case_and_runs_of_whitespace():
    [result] = judge({"must_contain": ["Free  shipping over €50"]}, "FREE shipping\n over  €50!")
    assert result == RuleResult(
        "must_contain", True, "The answer contains “Free  shipping over €50”."
    )


def test_must_contain_gives_one_result_per_phrase_and_says_which_is_missing():
    results = judge({"must_contain": ["30 days", "receipt"]}, "Returns within 30 days.")
    assert [(r.rule, r.passed) for r in results] == [
        ("must_contain", True),
        ("must_contain", False),
    ]
    assert results[1].why == "The answer does not contain “receipt”."


def test_must_contain_matches_compatibility_forms_the_same():
    # NFKC: a non-breaking space and a full-width digit match their plain forms.
    [result] = judge({"must_contain": ["€ 5"]}, "It costs €\u00a0５.")
    assert result.passed


def test_must_not_contain_fails_when_the_phrase_is_there_in_any_case():
    [result] = judge({"must_not_contain": ["guarantee"]}, "We GUARANTEE delivery")
    assert not result.passed
    assert result.why == "The answer contains “guarantee”, which it must not."
    [result] = judge({"must_not_contain": ["guarantee"]}, "Delivery in 2 days")
    assert result.passed


def test_an_empty_answer_contains_nothing():
    [wanted, unwanted] = judge({"must_contain": ["hi"], "must_not_contain": ["hi"]}, "")
    assert (wanted.passed, unwanted.passed) == (False, True)


def test_must_cite_source_needs_any_source_when_no_title_is_given():
    [none] = judge({"must_cite_source": True}, "x", sources=[])
    assert (none.passed, none.why) == (False, "The answer cites no knowledge source.")
    [some] = judge({"must_cite_source": True}, "x", sources=[{"title": "Returns"}])
    assert some.passed and some.why == "The answer cites 1 source(s)."


def test_a_source_title_must_be_among_the_cited_titles_in_any_stored_shape():
    stored = [
        {"pageContent": "...", "metadata": {"title": "Shipping policy"}},
        {"title": "FAQ"},
        "Opening hours",
    ]
    rules = {"must_cite_source": True, "source_title": "shipping POLICY"}
    [result] = judge(rules, "x", sources=stored)
    assert result.passed
    [result] = judge({"source_title": "Returns"}, "x", sources=stored)
    assert not result.passed
    assert result.why == (
        "The answer does not cite “Returns” (it cites: Shipping policy, FAQ, Opening hours)."
    )


def test_expect_handoff_both_ways():
    [ok] = judge({"expect_handoff": True}, handoff=True)
    [missed] = judge({"expect_handoff": True}, handoff=False)
    [unwanted] = judge({"expect_handoff": False}, handoff=True)
    assert (ok.passed, missed.passed, unwanted.passed) == (True, False, False)
    assert missed.why == "The customer was not handed to a person."


def test_expect_language_compares_base_codes():
    [ok] = judge({"expect_language": "nl"}, language="nl-NL")
    [wrong] = judge({"expect_language": "NL"}, language="en")
    assert ok.passed and ok.checked
    assert (wrong.passed, wrong.why) == (False, "The answer is in en, not nl.")


def test_expect_language_without_a_recorded_language_is_not_checked_and_does_not_fail():
    [result] = judge({"expect_language": "de"}, language=None)
    assert result == RuleResult(
        "expect_language",
        True,
        "Not checked: no language was recorded for this answer (expected de).",
        checked=False,
    )


def test_results_come_in_a_fixed_rule_order():
    rules = {
        "expect_language": "en",
        "expect_handoff": False,
        "must_cite_source": True,
        "must_not_contain": ["sorry"],
        "must_contain": ["hello"],
    }
    results = judge(rules, "Hello", sources=["a"], language="en")
    assert [r.rule for r in results] == [
        "must_contain",
        "must_not_contain",
        "must_cite_source",
        "expect_handoff",
        "expect_language",
    ]
    assert all(r.passed for r in results)


def test_normalise():
    assert normalise("  A\tB\n\nC  ") == "a b c"
    assert normalise(None) == ""

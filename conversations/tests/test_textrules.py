"""Text rules applied while streaming give exactly the rules applied to the whole answer."""

import itertools
import random

import pytest

from conversations.textrules import StreamingRewriter, rewrite_all

RULES = [
    {"kind": "exclamation", "replace": "."},
    {"kind": "replace", "find": "red wine", "replace": "rødvin"},
    {"kind": "replace", "find": "aa", "replace": "a"},
    {"kind": "replace", "find": "rødvin.", "replace": "rødvin!"},
]


def stream(text: str, cuts: list[int], rules: list[dict]) -> str:
    rewriter = StreamingRewriter(rules)
    out, last = [], 0
    for cut in [*cuts, len(text)]:
        out.append(rewriter.feed(text[last:cut]))
        last = cut
    return "".join(out) + rewriter.flush()


def expected(text: str, rules: list[dict]) -> str:
    for rule in rules:
        find = "!" if rule["kind"] == "exclamation" else rule["find"]
        text = text.replace(find, rule.get("replace") or ".")
    return text


@pytest.mark.parametrize(
    "text",
    ["Try our red wine! It is great!!", "aaaa red winered wine!", "red wine.", "r", "", "!!!"],
)
def test_every_single_split_point_gives_the_whole_text_result(text):
    for cut in range(len(text) + 1):
        assert stream(text, [cut], RULES) == expected(text, RULES)


def test_random_tokenisations_match_whole_text_rules():
    rng = random.Random(1)
    alphabet = ["red", " ", "wine", "!", "a", "rød", "vin", "."]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text), rng.randint(0, 8))))
        assert stream(text, cuts, RULES) == expected(text, RULES)


def test_every_two_cut_tokenisation_of_a_short_text():
    text = "a red wine!aa"
    for a, b in itertools.combinations(range(len(text) + 1), 2):
        assert stream(text, [a, b], RULES) == expected(text, RULES)


def test_no_rules_passes_text_through_unchanged():
    assert rewrite_all("Hello!", []) == "Hello!"


def test_exclamation_rule_defaults_to_a_full_stop():
    assert rewrite_all("Hej!", [{"kind": "exclamation", "replace": ""}]) == "Hej."

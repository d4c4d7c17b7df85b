"""How a turn is judged: the prompt and parser for a chatbot's `analysis` flow, and the builtin
heuristic analyser used when a bot has no such flow (or it fails).

The builtin analyser is a heuristic, not a model: the topic comes from keyword matches (the
bot's topic names and the tags of the knowledge entries behind the answer), the sentiment from
a small Danish/English word list, and the score from the outcome. It is cheap and predictable;
configure an analysis flow for judgements that understand the conversation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from chatbots.flow_router import parse_json_object
from conversations.turn_types import HistoryMessage

WORD = re.compile(r"\w+", re.UNICODE)
OTHER_TOPIC = "other"
SENTIMENTS = ("positive", "neutral", "negative")

# Small, deliberately conservative word lists (lower case). Words are matched whole, or as the
# start of a longer word when they are at least 6 letters (Danish compounds: "utilfredsheden").
POSITIVE_WORDS = frozenset(
    {
        # English
        "thanks", "thank", "great", "perfect", "excellent", "awesome", "helpful", "love",
        "lovely", "happy", "wonderful", "fantastic", "good", "nice", "brilliant", "appreciate",
        "satisfied", "solved", "works",
        # Danish
        "tak", "tusind", "super", "perfekt", "fantastisk", "dejlig", "dejligt", "god", "godt",
        "glad", "tilfreds", "skøn", "skønt", "hjælpsom", "fedt", "fint", "løst", "virker",
    }
)  # fmt: skip
NEGATIVE_WORDS = frozenset(
    {
        # English
        "bad", "terrible", "awful", "worst", "angry", "annoyed", "disappointed", "broken",
        "damaged", "wrong", "useless", "complaint", "complain", "unacceptable",
        "horrible", "hate", "late", "missing", "frustrated", "ridiculous", "poor",
        # Danish
        "dårlig", "dårligt", "elendig", "elendigt", "vred", "sur", "skuffet", "skuffende",
        "utilfreds", "ødelagt", "ødelagte", "forkert", "forkerte", "klage", "klager",
        "mangler", "forsinket", "uacceptabelt", "irriteret", "håbløst",
    }
)  # fmt: skip
NEGATIONS = frozenset({"not", "no", "don't", "isn't", "ikke", "ingen", "aldrig"})


@dataclass
class Verdict:
    topic: str
    score: int | None
    sentiment: str
    analyser: str
    details: dict[str, Any] = field(default_factory=dict)


def _words(text: str) -> list[str]:
    return WORD.findall((text or "").lower())


def _matches(word: str, vocabulary: frozenset[str]) -> bool:
    if word in vocabulary:
        return True
    return any(len(v) >= 6 and word.startswith(v) for v in vocabulary)


def sentiment_of(texts: list[str]) -> tuple[str, dict[str, int]]:
    """positive / neutral / negative from word counts; a negation flips the next word."""
    positive = negative = 0
    for text in texts:
        words = _words(text)
        for i, word in enumerate(words):
            negated = i > 0 and words[i - 1] in NEGATIONS
            if _matches(word, POSITIVE_WORDS):
                if negated:
                    negative += 1
                else:
                    positive += 1
            elif _matches(word, NEGATIVE_WORDS) and word not in NEGATIONS:
                negative += 1
    if positive > negative:
        sentiment = "positive"
    elif negative > positive:
        sentiment = "negative"
    else:
        sentiment = "neutral"
    return sentiment, {"positive_words": positive, "negative_words": negative}


def _topic_hits(topic: str, words: list[str]) -> int:
    """How often a topic name occurs in the words (as a word, or the start of a compound)."""
    name = topic.lower().strip()
    if not name:
        return 0
    if " " in name:
        return 1 if name in " ".join(words) else 0
    return sum(1 for w in words if w == name or (len(name) >= 4 and w.startswith(name)))


def topic_of(
    *, topics: list[str], question: str, source_tags: list[list[str]], source_titles: list[str]
) -> tuple[str, str]:
    """(topic, how it was found). Knowledge-entry tags weigh most, then the customer's words.

    With a topic list, the answer is always one of its names or `other`. Without one, the
    best-matching entry's first tag (or its title) stands in.
    """
    lowered = {t.lower(): t for t in topics if t.strip()}
    if lowered:
        scores: dict[str, float] = {}
        for rank, tags in enumerate(source_tags):
            weight = 2.0 / (rank + 1)  # the best passage counts most
            for tag in tags:
                name = lowered.get(tag.lower().strip())
                if name:
                    scores[name] = scores.get(name, 0.0) + weight
        if scores:
            return max(sorted(scores), key=lambda t: scores[t]), "knowledge tags"
        words = _words(question) + [w for title in source_titles[:1] for w in _words(title)]
        hits = {name: _topic_hits(name, words) for name in lowered.values()}
        best = max(sorted(hits), key=lambda t: hits[t])
        if hits[best] > 0:
            return best, "keywords"
        return OTHER_TOPIC, "no keyword matched"
    for tags in source_tags:
        if tags:
            return tags[0][:100], "knowledge tags (no topic list)"
    if source_titles:
        return source_titles[0][:100], "knowledge title (no topic list)"
    return "", "no topic list and no knowledge match"


def builtin_score(*, outcome: str, sentiment: str) -> int:
    """1-5 from the outcome, nudged by the customer's tone (a heuristic, see module doc)."""
    base = {"answered": 4, "handed_off": 2, "unanswered": 1}.get(outcome, 2)
    if outcome == "answered":
        base += {"positive": 1, "negative": -1}.get(sentiment, 0)
    return max(1, min(5, base))


def builtin_verdict(
    *,
    topics: list[str],
    question: str,
    customer_texts: list[str],
    source_tags: list[list[str]],
    source_titles: list[str],
    outcome: str,
    reason: str = "",
) -> Verdict:
    topic, topic_how = topic_of(
        topics=topics, question=question, source_tags=source_tags, source_titles=source_titles
    )
    sentiment, counts = sentiment_of(customer_texts)
    return Verdict(
        topic=topic,
        score=builtin_score(outcome=outcome, sentiment=sentiment),
        sentiment=sentiment,
        analyser=("builtin" + (f" ({reason})" if reason else ""))[:120],
        details={"heuristic": True, "topic_from": topic_how, **counts},
    )


# --- the analysis flow ------------------------------------------------------------------------

ANALYSIS_INSTRUCTIONS = (
    "You review a customer-service chat between a shop's chatbot and a customer.\n"
    "Answer with one JSON object and nothing else:\n"
    '{{"topic": "<one of: {topics}>", "score": <1-5>, "sentiment": "positive|neutral|negative"}}\n'
    "topic: what the customer asks about{topic_rule}.\n"
    "score: how well the chatbot helped: 1 = not at all, 3 = partly, 5 = fully answered.\n"
    "sentiment: the customer's mood."
)


def analysis_instructions(topics: list[str]) -> str:
    names = [t for t in topics if t.strip()]
    if names:
        return ANALYSIS_INSTRUCTIONS.format(
            topics=", ".join([*names, OTHER_TOPIC]),
            topic_rule=f', exactly one of the listed names ("{OTHER_TOPIC}" if none fits)',
        )
    return ANALYSIS_INSTRUCTIONS.format(
        topics="a short topic in the customer's language", topic_rule=" in one or two words"
    )


def transcript_text(messages: list[HistoryMessage]) -> str:
    labels = {"user": "Customer", "assistant": "Chatbot"}
    return "\n".join(
        f"{labels.get(m['role'], m['role'])}: {m['content'].strip()}"
        for m in messages
        if m["role"] in labels and m["content"].strip()
    )


def _score(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    if number > 10:  # a percentage
        number = number / 20
    elif number > 5:  # out of ten
        number = number / 2
    return max(1, min(5, int(number + 0.5)))  # half up: 4.5 of 5 is a 5


SENTIMENT_ALIASES = {
    "positive": "positive",
    "positiv": "positive",
    "neutral": "neutral",
    "negative": "negative",
    "negativ": "negative",
    "mixed": "neutral",
}


def parse_verdict(text: str, *, topics: list[str], flow_name: str) -> Verdict | None:
    """The flow's JSON answer as a Verdict, or None when it is not usable."""
    payload = parse_json_object(text)
    if payload is None:
        return None
    raw_topic = payload.get("topic", payload.get("emne", ""))
    raw_topic = raw_topic if isinstance(raw_topic, str) else json.dumps(raw_topic)[:100]
    topic = raw_topic.strip()[:100]
    lowered = {t.lower(): t for t in topics if t.strip()}
    if lowered:
        topic = lowered.get(topic.lower(), OTHER_TOPIC)
    sentiment = SENTIMENT_ALIASES.get(str(payload.get("sentiment", "")).strip().lower(), "")
    score = _score(payload.get("score"))
    if not topic and score is None and not sentiment:
        return None
    return Verdict(
        topic=topic,
        score=score,
        sentiment=sentiment,
        analyser=f"flow:{flow_name}"[:120],
        details={"raw_topic": raw_topic[:100], "raw": payload},
    )

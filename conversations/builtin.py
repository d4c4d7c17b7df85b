"""The builtin endpoint: answers from the chatbot's own knowledge entries, with no AI service.

It retrieves the best passages with PostgreSQL full-text search in the chatbot's language (the
knowledge app's `knowledge_search`, which other endpoints' flows get through
conversations.knowledge_context) and
streams the best one, saying plainly that it is quoting the shop's help pages. When nothing
matches it says so and tells the customer how to reach a person. It never pretends to be an LLM.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

from django.conf import settings

from aiclients.types import UpstreamEvent
from chatbots.config_types import ChatbotConfig, FlowConfig
from chatbots.models import WEEKDAYS
from knowledge.retrieval import knowledge_search

TEXTS = {
    "da": {
        "found": "Her er, hvad vores hjælpesider siger om “{title}”:\n\n{text}",
        "also": "\n\nSe også: {titles}.",
        "none": "Det kan jeg desværre ikke finde svar på i vores hjælpesider.",
        "contact": " Du kan kontakte kundeservice{ways}.",
        "hours": " Vi har åbent {hours}.",
    },
    "en": {
        "found": "Here is what our help pages say about “{title}”:\n\n{text}",
        "also": "\n\nSee also: {titles}.",
        "none": "I'm sorry, I couldn't find an answer to that in our help pages.",
        "contact": " You can reach our customer service{ways}.",
        "hours": " We are open {hours}.",
    },
}
DAY_NAMES = {
    "da": ["man", "tir", "ons", "tor", "fre", "lør", "søn"],
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
}


def _hours_summary(opening_hours: dict, language: str) -> str:
    names = DAY_NAMES.get(language, DAY_NAMES["en"])
    parts = []
    for index, day in enumerate(WEEKDAYS):
        spans = opening_hours.get(day) or []
        if spans:
            parts.append(f"{names[index]} " + ", ".join(f"{a}-{b}" for a, b in spans))
    return "; ".join(parts)


def builtin_answer_text(config: ChatbotConfig, matches: list[dict]) -> str:
    texts = TEXTS.get(config["language"], TEXTS["en"])
    if matches:
        best = matches[0]
        answer = texts["found"].format(title=best["title"], text=best["text"])
        others = [m["title"] for m in matches[1:] if m["rank"] >= best["rank"] * 0.5]
        if others:
            answer += texts["also"].format(titles=", ".join(f"“{t}”" for t in others))
        return answer
    answer = texts["none"]
    ways = [w for w in (config.get("contact_email"), config.get("contact_phone")) if w]
    if ways:
        joiner = " eller " if config["language"] == "da" else " or "
        prefix = " på " if config["language"] == "da" else " at "
        answer += texts["contact"].format(ways=prefix + joiner.join(ways))
    hours = _hours_summary(config.get("opening_hours") or {}, config["language"])
    if hours:
        answer += texts["hours"].format(hours=hours)
    return answer


def split_tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


async def builtin_answer_stream(
    *,
    config: ChatbotConfig,
    flow: FlowConfig,
    question: str,
    run_db: Callable,
) -> AsyncIterator[UpstreamEvent]:
    kb = flow.get("knowledge_base")
    matches = await run_db(
        knowledge_search,
        chatbot_id=config["id"],
        search_config=config["search_config"],
        question=question,
        knowledge_base_id=kb["id"] if kb else None,
        limit=flow.get("top_k") or 3,
    )
    if matches:
        yield UpstreamEvent(
            kind="source_documents",
            data=[
                {
                    "pageContent": m["text"],
                    "metadata": {
                        "title": m["title"],
                        "score": m["rank"],
                        # An entry's id, or an uploaded chunk's document, place and link.
                        **{
                            k: m[k]
                            for k in ("entry_id", "chunk_id", "document_id", "position", "link")
                            if m.get(k) not in (None, "")
                        },
                    },
                }
                for m in matches
            ],
        )
    rate = settings.BUILTIN_TOKENS_PER_SECOND
    for token in split_tokens(builtin_answer_text(config, matches)):
        yield UpstreamEvent(kind="token", text=token)
        if rate > 0:
            await asyncio.sleep(1 / rate)


async def builtin_route(*, config: ChatbotConfig, question: str, run_db: Callable) -> str | None:
    """Route to the answer flow whose knowledge base matches the question best."""
    best_key, best_rank = None, 0.0
    for flow in config["flows"]:
        kb = flow.get("knowledge_base")
        if flow["role"] != "answer" or not flow["routing_key"] or not kb or kb["kind"] != "builtin":
            continue
        matches = await run_db(
            knowledge_search,
            chatbot_id=config["id"],
            search_config=config["search_config"],
            question=question,
            knowledge_base_id=kb["id"],
            limit=1,
        )
        if matches and matches[0]["rank"] > best_rank:
            best_key, best_rank = flow["routing_key"], matches[0]["rank"]
    return best_key

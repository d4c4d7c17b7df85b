"""The built-in tools a shop can switch on per bot: opening hours, knowledge search (and, in
tools.builtin_actions, order look-up and handing over to a person)."""

from __future__ import annotations

import json
from typing import Any

from tools.registry import Tool, ToolContext, ToolResult, tool_register


async def opening_hours_run(ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    from chatbots.services import support_open_now

    config = ctx.config
    hours = config.get("opening_hours") or {}
    open_now = support_open_now(opening_hours=hours, timezone=config["timezone"])
    content = {
        "time_zone": config["timezone"],
        "opening_hours": hours,  # {"mon": [["09:00", "16:00"]], ...}; a missing day is closed
        "open_now": open_now,
        "contact_email": config.get("contact_email") or None,
        "contact_phone": config.get("contact_phone") or None,
    }
    return ToolResult(
        content=json.dumps(content, ensure_ascii=False),
        summary="open now" if open_now else "closed now",
    )


def knowledge_passages(*, config: dict[str, Any], query: str, limit: int) -> list[dict[str, Any]]:
    """The bot's best knowledge passages for a query. The one place the tool retrieves, so the
    knowledge app's retriever can take over here when it lands (sync: runs on a DB thread)."""
    from conversations.builtin import knowledge_search

    return knowledge_search(
        chatbot_id=config["id"],
        search_config=config["search_config"],
        question=query,
        knowledge_base_id=None,
        limit=limit,
    )


async def knowledge_search_run(ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    query = str(arguments.get("query") or ctx.question)[:500]
    matches = await ctx.run_db(knowledge_passages, config=ctx.config, query=query, limit=3)
    passages = [{"title": m["title"], "text": m["text"]} for m in matches]
    return ToolResult(
        content=json.dumps({"passages": passages}, ensure_ascii=False),
        summary=f"{len(passages)} passage(s) found",
    )


OPENING_HOURS = Tool(
    name="opening_hours",
    title="Opening hours",
    description=(
        "The shop's customer-service opening hours (per weekday, in its time zone), whether "
        "it is open now, and how to contact it."
    ),
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
    run=opening_hours_run,
    label={"en": "Checking our opening hours…", "da": "Tjekker vores åbningstider…"},
)

KNOWLEDGE_SEARCH = Tool(
    name="knowledge_search",
    title="Knowledge search",
    description=(
        "Search the shop's own help pages (delivery, returns, products, policies) and get the "
        "best matching passages to answer from."
    ),
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to look for."}},
        "required": ["query"],
        "additionalProperties": False,
    },
    run=knowledge_search_run,
    label={"en": "Searching our help pages…", "da": "Søger i vores hjælpesider…"},
)


def register_builtin_tools() -> None:
    for tool in (OPENING_HOURS, KNOWLEDGE_SEARCH):
        tool_register(tool)

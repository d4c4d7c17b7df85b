"""The built-in tools a shop can switch on per bot that need no other app: opening hours,
knowledge search and the transfer between agents. The order look-up (orders.tool) and the
handoff and ticket tools (helpdesk.tools) live with the apps they act through and register
themselves there; they ask `given_by_customer` below.
"""

from __future__ import annotations

import json
from typing import Any

from chatbots.config_types import ChatbotConfig
from chatbots.services import support_open_now
from knowledge.retrieval import knowledge_search
from tools.registry import Tool, ToolContext, ToolError, ToolResult, tool_register


async def opening_hours_run(ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
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


def knowledge_passages(*, config: ChatbotConfig, query: str, limit: int) -> list[dict[str, Any]]:
    """The bot's best knowledge passages for a query, from the knowledge app's full-text search
    over all the bot's builtin bases (sync: runs on a DB thread)."""
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


# --- acting on the customer's behalf ------------------------------------------------------------


def customer_text(ctx: ToolContext) -> str:
    """Everything the customer wrote in this conversation, lower-cased: what the model may pass
    on as the customer's own email or postcode (never something it made up or read elsewhere)."""
    parts = [ctx.question] + [m["content"] for m in ctx.history if m.get("role") == "user"]
    return "\n".join(p for p in parts if isinstance(p, str)).lower()


def given_by_customer(ctx: ToolContext, value: str) -> bool:
    """Whether the customer wrote `value` themselves (the order and handoff tools ask)."""
    return bool(value) and value.lower() in customer_text(ctx)


async def _transfer_run(ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    # The tool loop carries a transfer out itself (tools.loop.AgentTransfer).
    raise ToolError("Transfers are made by the conversation, not run as a tool.")


TRANSFER_TO_AGENT = Tool(
    name="transfer_to_agent",
    title="Transfer to another agent (answer flow)",
    description=(
        "Hand the customer's question to another of the shop's assistants that is better "
        "placed to answer it; it answers from here on."
    ),
    parameters={"type": "object", "properties": {"agent": {"type": "string"}}},
    run=_transfer_run,
    label={
        "en": "Passing you to the right assistant…",
        "da": "Sender dig til den rette assistent…",
    },
)

BUILTIN_TOOLS = (KNOWLEDGE_SEARCH, OPENING_HOURS, TRANSFER_TO_AGENT)


def register_builtin_tools() -> None:
    for tool in BUILTIN_TOOLS:
        tool_register(tool)

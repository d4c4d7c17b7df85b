"""The built-in tools a shop can switch on per bot: opening hours, knowledge search, order
look-up, handing over to a person and creating a ticket."""

from __future__ import annotations

import json
from typing import Any

from chatbots.config_types import ChatbotConfig
from tools.registry import Tool, ToolContext, ToolError, ToolResult, tool_register


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


def knowledge_passages(*, config: ChatbotConfig, query: str, limit: int) -> list[dict[str, Any]]:
    """The bot's best knowledge passages for a query, from the knowledge app's full-text search
    over all the bot's builtin bases (sync: runs on a DB thread)."""
    from knowledge.retrieval import knowledge_search

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


def _customer_text(ctx: ToolContext) -> str:
    """Everything the customer wrote in this conversation, lower-cased: what the model may pass
    on as the customer's own email or postcode (never something it made up or read elsewhere)."""
    parts = [ctx.question] + [m["content"] for m in ctx.history if m.get("role") == "user"]
    return "\n".join(p for p in parts if isinstance(p, str)).lower()


def _given_by_customer(ctx: ToolContext, value: str) -> bool:
    return bool(value) and value.lower() in _customer_text(ctx)


ORDER_TEXTS = {
    "missing": "Ask the customer for {what}; the order is shown only with it.",
    "not_given": (
        "The customer has not written {what} in this conversation; ask them for it instead "
        "of supplying one."
    ),
    "no_source": "This shop has no order system connected; order status cannot be looked up.",
    "too_many": (
        "Too many look-ups for this order number or from this customer; tell them to try again "
        "later or to contact customer service."
    ),
    "unavailable": (
        "The shop's order system is not answering right now; tell the customer to try again "
        "later or to contact customer service."
    ),
}
SECOND_FACTOR_WORDS = {"email": "the email address used for the order", "postcode": "the postcode"}


async def order_lookup_run(ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    import time

    from orders import answers, extract
    from orders.selectors import order_source_for_tool
    from orders.services import order_lookup_verified

    started = time.monotonic()
    source = await ctx.run_db(
        order_source_for_tool, chatbot_id=ctx.config["id"], language=ctx.language
    )
    if source is None:
        raise ToolError(ORDER_TEXTS["no_source"])
    details = extract.OrderDetails(
        order_number=extract.clean_order_number(arguments.get("order_number")),
        email=extract.clean_email(arguments.get("email")),
        postcode=extract.clean_postcode(arguments.get("postcode")),
    )
    missing = details.missing(source.second_factor)
    if missing:
        what = " and ".join(SECOND_FACTOR_WORDS.get(m, "the order number") for m in missing)
        raise ToolError(ORDER_TEXTS["missing"].format(what=what))
    factor = details.email if source.second_factor == "email" else details.postcode
    if not _given_by_customer(ctx, factor):
        raise ToolError(
            ORDER_TEXTS["not_given"].format(what=SECOND_FACTOR_WORDS[source.second_factor])
        )
    verified = await order_lookup_verified(
        source=source,
        chatbot_id=ctx.config["id"],
        turn_id=ctx.turn_id,
        conversation_id=ctx.conversation_id,
        details=details,
        run_db=ctx.run_db,
        started=started,
    )
    ctx.metadata["order_lookup"] = verified.metadata
    if verified.result == "too_many_attempts":
        await ctx.emit("order", {"status": "too_many_attempts"})
        raise ToolError(ORDER_TEXTS["too_many"])
    if verified.result == "unavailable":
        await ctx.emit("order", {"status": "unavailable"})
        raise ToolError(ORDER_TEXTS["unavailable"])
    if verified.result == "not_found":
        await ctx.emit("order", {"status": "not_found"})
        return ToolResult(
            content=json.dumps(
                {
                    "result": "not_found",
                    "note": "No order matches that number together with that "
                    + SECOND_FACTOR_WORDS[source.second_factor]
                    + ". Ask the customer to check both.",
                }
            ),
            summary="no matching order",
        )
    order = verified.order or {}
    await ctx.emit("order", order)
    return ToolResult(
        content=json.dumps(
            {"result": "found", "order": answers.order_context_text(order)}, ensure_ascii=False
        ),
        summary="order found",
    )


def _handoff_create(*, conversation_id: str, kind: str, reason: str, email: str, message: str):
    from config.errors import ApiError
    from conversations.models import Conversation
    from helpdesk.services import handoff_message, handoff_request

    conversation = Conversation.objects.select_related("chatbot").get(pk=conversation_id)
    try:
        handoff, _created = handoff_request(
            conversation=conversation, kind=kind, reason=reason, email=email, message=message
        )
    except ApiError as err:
        # The same refusals the widget's form gets: no helpdesk, closed without an email, the
        # day's limit. Their messages are written for the customer and hold nothing secret.
        raise ToolError(str(err.message)) from None
    return {
        "mode": handoff.mode,
        "message_for_customer": handoff_message(handoff, chatbot=conversation.chatbot),
    }


def _handoff_tool_run(kind: str):
    async def run(ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        from orders.extract import clean_email

        email = clean_email(arguments.get("email"))
        if email and not _given_by_customer(ctx, email):
            raise ToolError(ORDER_TEXTS["not_given"].format(what="an email address"))
        result = await ctx.run_db(
            _handoff_create,
            conversation_id=ctx.conversation_id,
            kind=kind,
            reason=str(arguments.get("reason") or "")[:500],
            email=email,
            message=str(arguments.get("message") or ctx.question)[:5000],
        )
        ctx.metadata["handoff"] = {"kind": kind, "mode": result["mode"]}
        summary = "a person will answer here" if result["mode"] == "live" else "ticket created"
        return ToolResult(content=json.dumps(result, ensure_ascii=False), summary=summary)

    return run


ORDER_LOOKUP = Tool(
    name="order_lookup",
    title="Order look-up",
    description=(
        "Look up the status and tracking of the customer's order. Needs the order number and "
        "the email address (or postcode) the customer gave for it in this conversation; never "
        "guess them."
    ),
    parameters={
        "type": "object",
        "properties": {
            "order_number": {"type": "string", "description": "As the customer wrote it."},
            "email": {"type": "string", "description": "The email the order was placed with."},
            "postcode": {"type": "string", "description": "The delivery postcode."},
        },
        "required": ["order_number"],
        "additionalProperties": False,
    },
    run=order_lookup_run,
    redact=frozenset({"email", "postcode"}),
    label={"en": "Looking up your order…", "da": "Slår din ordre op…"},
)

HANDOFF = Tool(
    name="handoff",
    title="Hand over to a person",
    description=(
        "Hand the conversation to a person at customer service: live while they are open, "
        "else as a ticket answered by email (then the customer's email address is needed)."
    ),
    parameters={
        "type": "object",
        "properties": {
            "reason": {"type": "string", "description": "Why, in a few words."},
            "email": {"type": "string", "description": "The customer's email, if they gave it."},
        },
        "additionalProperties": False,
    },
    run=_handoff_tool_run("handoff"),
    redact=frozenset({"email"}),
    label={"en": "Getting a person for you…", "da": "Finder en medarbejder til dig…"},
)

CREATE_TICKET = Tool(
    name="create_ticket",
    title="Create a ticket",
    description=(
        "Send the customer's request to customer service as a ticket they answer by email."
    ),
    parameters={
        "type": "object",
        "properties": {
            "message": {"type": "string", "description": "The request, in the customer's words."},
            "email": {"type": "string", "description": "The customer's email."},
        },
        "required": ["message"],
        "additionalProperties": False,
    },
    run=_handoff_tool_run("contact"),
    redact=frozenset({"email"}),
    label={"en": "Creating a ticket…", "da": "Opretter en henvendelse…"},
)


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

BUILTIN_TOOLS = (
    ORDER_LOOKUP,
    KNOWLEDGE_SEARCH,
    OPENING_HOURS,
    HANDOFF,
    CREATE_TICKET,
    TRANSFER_TO_AGENT,
)


def register_builtin_tools() -> None:
    for tool in BUILTIN_TOOLS:
        tool_register(tool)

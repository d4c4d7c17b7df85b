"""The order look-up tool a shop can switch on per bot (tools.registry): the model asks for an
order by number and the second factor the customer gave, and gets the order or what to ask for.
It lives with the orders app, whose look-up it runs; orders.apps registers it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from orders import answers, extract
from orders.selectors import order_source_for_tool
from orders.services import order_lookup_verified
from tools.builtin import given_by_customer
from tools.registry import Tool, ToolContext, ToolError, ToolResult

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
    if not given_by_customer(ctx, factor):
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

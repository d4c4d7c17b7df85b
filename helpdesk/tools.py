"""The tools that hand a conversation to people (tools.registry): `handoff` (live while customer
service is open, else a ticket answered by email) and `create_ticket`. They make the same
handoff as the widget's form (helpdesk.services), so they live here; helpdesk.apps registers them.
"""

from __future__ import annotations

import json
from typing import Any

from config.errors import ApiError
from conversations.models import Conversation
from helpdesk.services import handoff_message, handoff_request
from orders.extract import clean_email
from orders.tool import ORDER_TEXTS
from tools.builtin import given_by_customer
from tools.registry import Tool, ToolContext, ToolError, ToolResult


def _handoff_create(*, conversation_id: str, kind: str, reason: str, email: str, message: str):
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
        email = clean_email(arguments.get("email"))
        if email and not given_by_customer(ctx, email):
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

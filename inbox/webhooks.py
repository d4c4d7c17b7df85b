"""Agent replies made in Freshdesk or Zendesk, back into the chat (docs/inbox.md, "Helpdesk loop").

`POST /api/helpdesk/webhooks/<connection id>`, called by the helpdesk when an agent answers a
ticket the chatbot created. Verified before anything is read: Zendesk signs each request
(base64 HMAC-SHA256 of timestamp + body with the webhook's signing secret); Freshdesk cannot
sign, so its automation sends the shared secret in a header. Anything unverified — unknown
connection, no secret configured, wrong or stale signature — is the same 401.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.errors import ApiError, ErrorCode, error_response
from config.input_guard import json_object_parse
from conversations.models import Conversation, Message
from helpdesk.models import Handoff, HelpdeskConnection
from inbox import services

# A Zendesk signature older (or newer) than this is a replay.
SIGNATURE_MAX_AGE = dt.timedelta(minutes=5)
FRESHDESK_SECRET_HEADER = "X-Chatbot-Webhook-Secret"


def _unverified() -> ApiError:
    return ApiError(
        ErrorCode.NOT_AUTHENTICATED,
        "The webhook's signature does not match this connection's secret.",
    )


def webhook_verify(*, connection, headers, body: bytes, now: dt.datetime | None = None) -> None:
    """Raise 401 unless the request was signed with the connection's webhook secret."""
    if connection is None or not connection.webhook_secret:
        raise _unverified()
    secret = connection.webhook_secret.reveal().encode()
    if connection.kind == "zendesk":
        signature = headers.get("X-Zendesk-Webhook-Signature", "")
        stamp = headers.get("X-Zendesk-Webhook-Signature-Timestamp", "")
        try:
            when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _unverified() from exc
        if when.tzinfo is None or abs((now or timezone.now()) - when) > SIGNATURE_MAX_AGE:
            raise _unverified()
        expected = base64.b64encode(
            hmac.new(secret, stamp.encode() + body, hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise _unverified()
        return
    if not hmac.compare_digest(secret, headers.get(FRESHDESK_SECRET_HEADER, "").encode()):
        raise _unverified()


def _field(body: dict, name: str, *, max_len: int, required: bool = True) -> str:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_len:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"`{name}` must be text of at most {max_len} characters.",
            details={"field": name},
        )
    return value.strip()


def helpdesk_reply_append(
    *, connection, ticket_id: str, text: str, agent_name: str, comment_id: str
) -> tuple[Message, bool, bool]:
    """Store the helpdesk agent's reply in the ticket's conversation (role `agent`); send it to
    the widget when a person's turn is open. Returns (message, created, pushed).

    A repeat of the same comment (helpdesks retry webhooks) is stored once."""
    handoff = (
        Handoff.objects.filter(conversation__chatbot_id=connection.chatbot_id, ticket_id=ticket_id)
        .order_by("-created_at")
        .first()
    )
    if handoff is None:
        raise ApiError(
            ErrorCode.CONVERSATION_NOT_FOUND,
            "No conversation of this chatbot was handed to this ticket.",
        )
    key = f"{connection.kind}:{ticket_id}:{comment_id or hashlib.sha256(text.encode()).hexdigest()}"
    agent = {"name": (agent_name or "")[:60] or None}
    with transaction.atomic():
        # Lock: serialises the sequence with the chat's own messages, and a retried webhook.
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("chatbot")
            .get(pk=handoff.conversation_id)
        )
        existing = Message.objects.filter(
            conversation=conversation, metadata__helpdesk_comment=key
        ).first()
        if existing is not None:
            return existing, False, False
        from conversations.services import _next_sequence

        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.AGENT,
            content=text,
            sequence=_next_sequence(conversation.pk),
            metadata={
                "agent": agent,
                "source": connection.kind,
                "ticket_id": ticket_id,
                "helpdesk_comment": key,
            },
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            message_count=conversation.message_count + 1, last_activity_at=timezone.now()
        )
        pushed = bool(conversation.human_turn_id)
        services._after_commit(
            str(conversation.human_turn_id) if pushed else None,
            [
                (
                    "agent_message",
                    {**services._message_data(message), "agent": agent, "via": connection.kind},
                )
            ],
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change="helpdesk_reply",
        )
    return message, True, pushed


@csrf_exempt
@require_POST
def helpdesk_webhook(request: HttpRequest, connection_id: int) -> JsonResponse:
    try:
        connection = (
            HelpdeskConnection.objects.filter(pk=connection_id, active=True).first()
            if connection_id < 2**31
            else None
        )
        body = request.body
        webhook_verify(connection=connection, headers=request.headers, body=body)
        data = json_object_parse(body)
        message, created, pushed = helpdesk_reply_append(
            connection=connection,
            ticket_id=_field(data, "ticket_id", max_len=50),
            text=_field(data, "text", max_len=services.REPLY_MAX_CHARS),
            agent_name=_field(data, "agent_name", max_len=200, required=False),
            comment_id=_field(data, "comment_id", max_len=100, required=False),
        )
    except ApiError as err:
        return error_response(err)
    return JsonResponse(
        {"message_id": str(message.pk), "duplicate": not created, "pushed": pushed},
        status=201 if created else 200,
    )

"""Conversation access tokens: signed, expiring, bound to one conversation and its chatbot.

The token is handed out when a conversation is created; every later read or write of that
conversation (REST, polling, WebSocket) must present it. Guessing a session id gets nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "conversation-access"


@dataclass(frozen=True)
class ConversationGrant:
    conversation_id: uuid.UUID
    chatbot_id: int


def conversation_token_issue(*, conversation_id: uuid.UUID, chatbot_id: int) -> str:
    return signing.dumps({"c": str(conversation_id), "b": chatbot_id}, salt=SALT, compress=False)


def conversation_token_check(token: str | None) -> ConversationGrant | None:
    """The grant in a valid, unexpired token; None for anything else."""
    if not token or len(token) > 1000:
        return None
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.CONVERSATION_TOKEN_MAX_AGE)
        return ConversationGrant(uuid.UUID(payload["c"]), int(payload["b"]))
    except (signing.BadSignature, KeyError, ValueError, TypeError):
        return None


def token_from_request(request) -> str | None:
    """Bearer header, X-Conversation-Token header, or ?token= (for EventSource-style clients)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.headers.get("X-Conversation-Token") or request.GET.get("token")

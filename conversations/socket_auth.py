"""Who a push socket (WebSocket or Socket.IO) belongs to: a conversation token, or a JWT of a
user who may use the conversation's chatbot (an API user of the bot, a member of its shop with
at least the agent role, an operator) — the same rule as the REST API (docs/access.md)."""

from __future__ import annotations

import uuid

from rest_framework.exceptions import APIException
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError

from accounts.models import Role
from config.authentication import looks_like_jwt
from conversations.access import conversation_token_check, user_may_use_chatbot
from conversations.models import Conversation


def jwt_user(token: str):
    """The active user of a valid, unexpired, unrevoked JWT access token; None otherwise."""
    if not token or len(token) > 4000 or not looks_like_jwt(token):
        return None
    auth = JWTAuthentication()
    try:
        user = auth.get_user(auth.get_validated_token(token.encode("latin-1", "replace")))
    except (APIException, TokenError, UnicodeError):
        return None
    return user if user is not None and user.is_active else None


def user_conversation(user, conversation_id) -> Conversation | None:
    """The conversation, if this user may write to it (sockets send messages: agent role)."""
    try:
        conversation_id = uuid.UUID(str(conversation_id))
    except ValueError:
        return None
    conversation = Conversation.objects.select_related("chatbot").filter(pk=conversation_id).first()
    if conversation is None or not user_may_use_chatbot(
        user, conversation.chatbot_id, min_role=Role.AGENT
    ):
        return None
    return conversation


def token_conversation(token: str) -> Conversation | None:
    """The conversation a conversation token is for (None for anything else)."""
    grant = conversation_token_check(token)
    if grant is None:
        return None
    return (
        Conversation.objects.select_related("chatbot")
        .filter(pk=grant.conversation_id, chatbot_id=grant.chatbot_id)
        .first()
    )

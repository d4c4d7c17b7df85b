"""Who may read and write a conversation, and who may start one (docs/access.md).

- The widget starts conversations with the chatbot's public widget key, from one of the bot's
  allowed origins, and then holds the conversation token: signed, expiring, bound to that one
  conversation and chatbot.
- Server-to-server clients use JWT (djangorestframework-simplejwt), scoped to the chatbots they
  were granted (Chatbot.api_users). Shop members (session or JWT) use their shops' chatbots:
  viewers read conversations, agents and up also start, write into and end them; platform
  operators use every chatbot (accounts.access, the one rule).
- Anything else gets the same 404 whether or not the id exists.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core import signing

from accounts.models import AuditEvent, Role
from accounts.services import audit_object
from chatbots import access
from chatbots.models import Chatbot
from chatbots.selectors import ACCESS_KEY, chatbot_access_get
from config.authentication import looks_like_jwt
from config.errors import ApiError, ErrorCode
from config.redis import loop_redis
from conversations import services
from conversations.models import Conversation, Turn

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
    """Bearer header, X-Conversation-Token header, or ?token= (EventSource-style clients)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
        if not looks_like_jwt(token):
            return token
    return request.headers.get("X-Conversation-Token") or request.GET.get("token")


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Exact match against the bot's origins (or "*"); None means no Origin header."""
    if "*" in allowed:
        return True
    if not origin:
        return False
    return origin.rstrip("/") in allowed


def request_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def min_role_for(request) -> str:
    """Reading a conversation (GET, HEAD) takes a viewer; anything that changes it an agent."""
    return Role.VIEWER if request.method in ("GET", "HEAD") else Role.AGENT


def user_may_use_chatbot(user, chatbot_id: int, *, min_role: str = Role.AGENT) -> bool:
    if user is None or not user.is_active:
        return False
    return access.user_may_use_chatbot(user, chatbot_id, min_role=min_role)


def not_found(code: ErrorCode = ErrorCode.CONVERSATION_NOT_FOUND) -> ApiError:
    return ApiError(code, "No conversation with this id for the credentials given.")


def check_browser_origin(request, chatbot: Chatbot) -> None:
    """A browser request (it carries Origin) must come from one of the bot's sites."""
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(origin, chatbot.allowed_origins):
        raise ApiError(
            ErrorCode.ORIGIN_NOT_ALLOWED,
            "This site may not use this chatbot; add it to the chatbot's allowed origins.",
        )


def conversation_access(request, conversation_id, *, body_token: str = ""):
    """The conversation the caller may use: its token, or a JWT/staff user with access."""
    grant = conversation_token_check(token_from_request(request) or body_token)
    if grant is not None:
        if conversation_id is not None and grant.conversation_id != conversation_id:
            raise not_found()
        conversation = (
            Conversation.objects.select_related("chatbot")
            .filter(pk=grant.conversation_id, chatbot_id=grant.chatbot_id)
            .first()
        )
        if conversation is None:
            raise not_found()
        check_browser_origin(request, conversation.chatbot)
        return conversation
    user = request_user(request)
    if user is not None and conversation_id is not None:
        conversation = (
            Conversation.objects.select_related("chatbot").filter(pk=conversation_id).first()
        )
        if conversation is not None and user_may_use_chatbot(
            user, conversation.chatbot_id, min_role=min_role_for(request)
        ):
            if request.method == "GET":
                # A person (not the visitor's own token) read a transcript: the shop's audit log.
                audit_object(action=AuditEvent.Action.READ, obj=conversation, request=request)
            return conversation
    raise not_found()


def chatbot_for_new_conversation(request, chatbot_public_id: str, widget_key: str = "") -> Chatbot:
    """Who may start a conversation: the widget (key + allowed origin) or a JWT/staff user."""
    chatbot = Chatbot.objects.filter(public_id=chatbot_public_id, active=True).first()
    if chatbot is None:
        raise ApiError(ErrorCode.CHATBOT_NOT_FOUND, "No active chatbot with this id.")
    user = request_user(request)
    if user is not None:
        if user_may_use_chatbot(user, chatbot.pk):
            return chatbot
        raise ApiError(ErrorCode.PERMISSION_DENIED, "Your API user may not use this chatbot.")
    key = widget_key or request.headers.get("X-Widget-Key", "")
    if not key or not hmac.compare_digest(key.encode(), chatbot.widget_key.encode()):
        raise ApiError(
            ErrorCode.NOT_AUTHENTICATED,
            "Send the chatbot's widget key (X-Widget-Key) or an API token.",
        )
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, chatbot.allowed_origins):
        raise ApiError(
            ErrorCode.ORIGIN_NOT_ALLOWED,
            "This site may not use this chatbot; add it to the chatbot's allowed origins.",
        )
    return chatbot


def conversation_for(request, session_id, body_token: str = "") -> Conversation:
    """The conversation the caller may use, or 404 (same answer whether or not it exists);
    403 CHATBOT_INACTIVE once its chatbot is switched off (every session endpoint, helpdesk,
    inbox, quality, chat API and process-message come through here)."""
    conversation = conversation_access(request, session_id, body_token=body_token)
    services.chatbot_require_active(conversation.chatbot)
    return conversation


def _turn_by_grant(request, grant: ConversationGrant, turn_id) -> Turn | None:
    """The turn of the token's conversation (None for another's), from one of the bot's sites."""
    turn = (
        Turn.objects.select_related("conversation__chatbot")
        .filter(
            pk=turn_id,
            conversation_id=grant.conversation_id,
            conversation__chatbot_id=grant.chatbot_id,
        )
        .first()
    )
    if turn is not None:
        check_browser_origin(request, turn.conversation.chatbot)
    return turn


def _turn_by_user(request, turn_id) -> Turn | None:
    """The turn, when the JWT/staff user may use its chatbot for this request's method."""
    user = request_user(request)
    if user is None:
        return None
    turn = Turn.objects.select_related("conversation__chatbot").filter(pk=turn_id).first()
    if turn is not None and not user_may_use_chatbot(
        user, turn.conversation.chatbot_id, min_role=min_role_for(request)
    ):
        return None
    return turn


def turn_for(request, turn_id) -> Turn:
    """The turn the caller may follow or cancel: through its conversation's token, or (with no
    token) as a JWT/staff user with access; 404 TURN_NOT_FOUND for anything else."""
    grant = conversation_token_check(token_from_request(request))
    if grant is not None:
        turn = _turn_by_grant(request, grant, turn_id)
    else:
        turn = _turn_by_user(request, turn_id)
    if turn is None:
        raise ApiError(ErrorCode.TURN_NOT_FOUND, "No such turn for the credentials given.")
    services.chatbot_require_active(turn.conversation.chatbot)  # polling and cancel too
    return turn


def conversation_or_chatbot(request, data: dict) -> tuple[Conversation | None, Chatbot]:
    """(existing conversation, its chatbot) or (None, the chatbot a new one will belong to).

    An existing conversation needs its token (or an API/staff user with access); a new one the
    widget key from an allowed origin, or an API/staff user. Shared by every endpoint that takes
    a customer message (process-message, upload-image).
    """
    if data.get("session_id"):
        conversation = conversation_for(
            request, data["session_id"], data.get("conversation_token", "")
        )
        if conversation.chatbot.public_id != data["chatbot_id"]:
            raise ApiError(
                ErrorCode.CONVERSATION_NOT_FOUND,
                "No conversation with this id for the credentials given.",
            )
        return conversation, conversation.chatbot
    return None, chatbot_for_new_conversation(
        request, data["chatbot_id"], data.get("widget_key", "")
    )


# Channels' wrapper returns the thread's database connection to the pool afterwards; a plain
# sync_to_async kept one connection per executor thread until the pool ran dry.
_access_from_db = database_sync_to_async(chatbot_access_get, thread_sensitive=False)


async def chatbot_access_cached(chatbot_id: int) -> dict[str, Any] | None:
    """On the event loop: whether a chatbot answers and which sites may use it
    (chatbots.selectors.chatbot_access_get's cached record, dropped on every save of the bot),
    read with the loop's Redis client; PostgreSQL once per chatbot per cache period."""
    raw = await loop_redis().get(ACCESS_KEY.format(chatbot_id))
    if raw is not None:
        return json.loads(raw)
    return await _access_from_db(chatbot_id=chatbot_id)

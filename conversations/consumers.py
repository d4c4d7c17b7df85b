"""WebSocket `/ws/conversations/<session_id>/`: send messages, watch answers live, resume, cancel.

Delivery is gapless and duplicate-free: the turns a socket follows are read by
conversations/follower.py (subscribe first, replay from the logs, then live frames), the same
reader Socket.IO uses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import urllib.parse
import uuid
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import connection

from chatbots.config_types import ChatbotConfig
from chatbots.selectors import chatbot_config_get
from config.authentication import looks_like_jwt
from config.errors import ApiError, ErrorCode, error_frame
from config.input_guard import frame_refusal
from config.socket_limits import slot_of
from conversations import access, eventlog, hooks, selectors, services, socket_auth, streaming
from conversations.event_types import Event, LayerMessage
from conversations.follower import TurnFollower
from conversations.models import Conversation, Turn

logger = logging.getLogger(__name__)

_db_executor: concurrent.futures.ThreadPoolExecutor | None = None


def db(fn):
    """Run a consumer's database helper on a small thread pool of the process.

    Channels' default is thread-sensitive: every consumer's database call in the ASGI process
    queues on one shared thread, so a burst of resumes drains one at a time (bench/findings.md,
    item 2). These helpers share no state, so they run in parallel, each borrowing a pooled
    connection (`WS_DB_THREADS` threads, at most the pool's size)."""

    def executor() -> concurrent.futures.ThreadPoolExecutor:
        global _db_executor
        if _db_executor is None:
            _db_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=settings.WS_DB_THREADS, thread_name_prefix="ws-db"
            )
        return _db_executor

    async def call(*args, **kwargs):
        runner = database_sync_to_async(fn, thread_sensitive=False, executor=executor())
        return await runner(*args, **kwargs)

    return call


@db
def _conversation_bot_active(conversation_id) -> bool | None:
    """Whether the conversation's chatbot answers (None: no such conversation): one
    primary-key join, written out (conversations/turn_start.py says why)."""
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT b."active" FROM "conversations_conversation" c '
            'JOIN "chatbots_chatbot" b ON b."id" = c."chatbot_id" WHERE c."id" = %s',
            [conversation_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


async def conversation_require_active(conversation_id) -> None:
    """Refuse with CHATBOT_INACTIVE once the conversation's chatbot is switched off (#18 item 5).

    Read fresh on each request of an open socket: the socket's own copy of the chatbot is from
    when it authenticated, and a bot switched off since then answers nothing more on it (not its
    history, a resume or a cancel either), as on REST. The ORM's conversation-and-chatbot query
    (every column of both, compiled per call) was a fifth of Daphne's busy time in a burst of
    resumes at 500 streams (#23); this reads the one column it needs."""
    active = await _conversation_bot_active(conversation_id)
    if active is None:
        raise ApiError(ErrorCode.CONVERSATION_NOT_FOUND, "This conversation no longer exists.")
    services.chatbot_active_require(active=active)


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Browsers always send Origin; a missing one is a server-side client holding a token."""
    return origin is None or access.origin_allowed(origin, allowed)


@db
def _load_conversation(
    token: str, conversation_id
) -> tuple[Conversation, ChatbotConfig | None] | None:
    """The conversation of the URL, for its conversation token or a JWT of a user who may use
    its chatbot (conversations/socket_auth.py); None for anything else."""
    if looks_like_jwt(token):
        user = socket_auth.jwt_user(token)
        conversation = user and socket_auth.user_conversation(user, conversation_id)
    else:
        conversation = socket_auth.token_conversation(token)
        if conversation is not None and str(conversation.pk) != str(conversation_id):
            conversation = None
    if conversation is None:
        return None
    return conversation, chatbot_config_get(public_id=conversation.chatbot.public_id)


@db
def _feedback(conversation_id, message_id, value: str, comment: str):
    recorder = hooks.feedback_recorder()
    if recorder is None:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR, "Votes on answers are not accepted by this installation."
        )
    return recorder(
        conversation=Conversation.objects.get(pk=conversation_id),
        message_id=message_id,
        value=value,
        comment=comment,
    )


@db
def socket_message_submit(conversation_id, text: str, key: str, ip: str | None, content: dict):
    """A customer's message from a socket (WebSocket or Socket.IO), on the database thread:
    (turn id, message id, turn status, whether the turn was created now)."""
    conversation = Conversation.objects.get(pk=conversation_id)
    turn, created = services.message_submit(
        conversation=conversation,
        text=text,
        idempotency_key=key,
        client_ip=ip,
        attachments=content,  # handled after the cheap checks (services.message_attachments)
    )
    return str(turn.pk), str(turn.user_message_id), turn.status, created


@db
def _turn(conversation_id, turn_id) -> Turn | None:
    return Turn.objects.filter(pk=turn_id, conversation_id=conversation_id).first()


@db
def db_events(turn_id: str, after: int, limit: int) -> list[dict]:
    """The follower's PostgreSQL read (eventlog's async door), on the database thread."""
    return eventlog.db_events_after(turn_id, after, limit)


@db
def _cancel(turn: Turn) -> str:
    return services.turn_cancel(turn=turn)


@db
def _history(conversation_id, limit: int) -> list[dict]:
    # The same message shape as GET /api/sessions/<id>/history (with each question's outcome).
    return selectors.conversation_history_latest(conversation_id=conversation_id, limit=limit)


def consumer_follower(consumer) -> TurnFollower:
    """The turn follower of a Channels consumer (the customer's socket and the inbox's): its
    layer and channel, its emit_event, the logs read through eventlog's async door."""
    return TurnFollower(
        channel_layer=consumer.channel_layer,
        channel_name=consumer.channel_name,
        emit=consumer.emit_event,
        read_db=db_events,
        redis=streaming.loop_event_redis,
    )


async def resume_turn_get(
    conversation_id, turn_id: Any, after: Any, *, names: tuple[str, str]
) -> Turn:
    """The turn a resume names (WebSocket and Socket.IO), its point checked as polling checks
    it: 400 for a malformed id or point (named as the protocol names them), 400 or 410 for a
    point the turn never had or no longer has, 404 for a turn not in this conversation."""
    try:
        turn_uuid = uuid.UUID(str(turn_id))
    except ValueError:
        turn_uuid = None
    if turn_uuid is None or not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"`{names[0]}` must be a turn id and `{names[1]}` a whole number ≥ 0.",
        )
    turn = await db(selectors.turn_for_resume)(
        conversation_id=conversation_id, turn_id=turn_uuid, after=after
    )
    if turn is None:
        raise ApiError(ErrorCode.TURN_NOT_FOUND, "No such turn in this conversation.")
    return turn


class ConversationRequests:
    """The socket's client messages that are one request and one reply: cancel a turn, vote on
    an answer, read the history. Each refuses a switched-off chatbot first, then checks its
    input and calls the service; it returns the reply frame for the consumer to send, and the
    ApiError it raises becomes the consumer's error frame."""

    def __init__(self, *, conversation_id, customer: bool) -> None:
        self.conversation_id = conversation_id
        # The conversation's own customer (its token), not an API user: only they vote.
        self.customer = customer

    async def cancel(self, content: dict) -> dict:
        await conversation_require_active(self.conversation_id)
        try:
            turn_uuid = uuid.UUID(str(content.get("turn_id")))
        except ValueError as exc:
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`turn_id` must be a turn id.") from exc
        turn = await _turn(self.conversation_id, turn_uuid)
        if turn is None:
            raise ApiError(ErrorCode.TURN_NOT_FOUND, "No such turn in this conversation.")
        status = await _cancel(turn)
        return {"type": "cancel", "turn_id": str(turn.pk), "status": status}

    async def feedback(self, content: dict) -> dict:
        """The customer's thumbs on one answer: the same rules as REST's
        POST …/messages/<id>/feedback (docs/quality.md); an API user gets PERMISSION_DENIED."""
        await conversation_require_active(self.conversation_id)
        if not self.customer:
            raise ApiError(
                ErrorCode.PERMISSION_DENIED, "Only the conversation's customer votes on answers."
            )
        try:
            message_id = uuid.UUID(str(content.get("message_id")))
        except ValueError as exc:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR, "`message_id` must be an answer's id."
            ) from exc
        value, comment = content.get("value"), content.get("comment", "")
        if not isinstance(value, str) or not isinstance(comment, str) or len(comment) > 500:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "`value` must be `up` or `down`, `comment` text of at most 500 characters.",
            )
        feedback, created = await _feedback(self.conversation_id, message_id, value, comment)
        return {
            "type": "feedback",
            "message_id": str(feedback.message_id),
            "value": feedback.value,
            "created": created,
        }

    async def history(self, content: dict) -> dict:
        await conversation_require_active(self.conversation_id)
        limit = content.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            limit = 50
        messages = await _history(self.conversation_id, limit)
        return {
            "type": "chat:history",
            "session_id": str(self.conversation_id),
            "messages": messages,
        }


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch, minus its `aclose_old_connections()` before every handler: a
        thread hop for each streamed frame (a tenth of the ASGI process's busy time at 200
        streams). This consumer never uses a database connection on the event loop's thread; its
        database work runs in `db`, which closes what it used."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.conversation_id = self.scope["url_route"]["kwargs"]["session_id"]
        self.conversation: Conversation | None = None
        self.follower = consumer_follower(self)
        headers = dict(self.scope.get("headers") or [])
        self.origin = headers.get(b"origin", b"").decode("latin-1") or None
        await self.accept()
        # Closed unless a token arrives in time (issue #18 item 4): an idle socket that never
        # authenticates would otherwise hold its slot of the per-address cap for good.
        self.auth_timer = asyncio.ensure_future(self.close_if_unauthenticated())
        query = self.scope.get("query_string", b"").decode("latin-1")
        token = (urllib.parse.parse_qs(query).get("token") or [None])[0]
        if token:
            await self.guarded(self.authenticate(token))

    async def close_if_unauthenticated(self) -> None:
        await asyncio.sleep(settings.WS_AUTH_TIMEOUT_SECONDS)
        if self.conversation is None:
            await self.send_error(
                ErrorCode.NOT_AUTHENTICATED,
                f"No token within {settings.WS_AUTH_TIMEOUT_SECONDS:g} seconds; reconnect with"
                ' ?token=… or send {"type": "auth", "token": …} first.',
            )
            await self.close(code=4401)

    async def authenticate(self, token: str) -> bool:
        loaded = await _load_conversation(token, self.conversation_id)
        if loaded is None:
            await self.send_error(
                ErrorCode.CONVERSATION_NOT_FOUND,
                "No conversation with this id for the token given.",
            )
            await self.close(code=4404)
            return False
        conversation, config = loaded
        allowed = config["allowed_origins"]
        if conversation.preview is not None:
            # A staff preview (chatbots/preview.py) is opened from our own admin pages only.
            host = dict(self.scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            allowed = [f"http://{host}", f"https://{host}"] if host else []
        if not origin_allowed(self.origin, allowed):
            await self.send_error(
                ErrorCode.PERMISSION_DENIED, "This site may not use this chatbot."
            )
            await self.close(code=4403)
            return False
        try:
            services.chatbot_require_active(conversation.chatbot)
        except ApiError as err:
            # Existing tokens of a switched-off chatbot get nothing, not even the history.
            await self.send_error(err.code, err.message)
            await self.close(code=4403)
            return False
        self.conversation = conversation
        self.requests = ConversationRequests(
            conversation_id=conversation.pk, customer=not looks_like_jwt(token)
        )
        self.auth_timer.cancel()
        if (slot := slot_of(self.scope)) is not None:
            slot.authenticated()
        await self.send_json({"type": "ready", "session_id": str(conversation.pk)})
        return True

    async def disconnect(self, code: int) -> None:
        if (timer := getattr(self, "auth_timer", None)) is not None:
            timer.cancel()
        if (follower := getattr(self, "follower", None)) is not None:
            await follower.stop()

    async def send_error(self, code: str, message: str, details: dict | None = None) -> None:
        await self.send_json(error_frame(code, message, details))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Not an object; NUL, lone surrogates, unsafe numbers: refused as a REST body would be.
        if (err := frame_refusal(content)) is not None:
            await self.send_error(err.code, err.message, err.details)
            return
        kind = content.get("type")
        if not isinstance(kind, str):
            kind = None
        if self.conversation is None:
            if kind == "auth" and isinstance(content.get("token"), str):
                await self.guarded(self.authenticate(content["token"]))
            else:
                await self.send_error(
                    ErrorCode.NOT_AUTHENTICATED, 'Send {"type": "auth", "token": …} first.'
                )
            return
        handler = {
            "message": self.on_message,
            "chat:message": self.on_message,
            "resume": self.on_resume,
            "cancel": self.on_cancel,
            "chat:history": self.on_history,
            "history": self.on_history,
            "ping": self.on_ping,
            "feedback": self.on_feedback,
        }.get(kind)
        if handler is None:
            await self.send_error(
                ErrorCode.VALIDATION_ERROR,
                "Unknown message type; use message, resume, cancel, history, feedback or ping.",
            )
            return
        try:
            await self.guarded(handler(content))
        except ApiError as err:
            await self.send_error(err.code, err.message, err.details)

    async def guarded(self, work) -> None:
        """PostgreSQL or Redis away: tell the client to come back (4503 mirrors HTTP 503)."""
        from config.middleware import is_dependency_down

        try:
            await work
        except Exception as exc:
            if not is_dependency_down(exc):
                raise
            logger.warning("websocket: dependency unavailable: %s", exc)
            await self.send_error(
                ErrorCode.SERVICE_UNAVAILABLE,
                "The service is briefly unavailable; please reconnect in a few seconds.",
            )
            await self.close(code=4503)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_error(ErrorCode.VALIDATION_ERROR, "Send JSON text frames.")
            return
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting (was 1011)
            await self.send_error(ErrorCode.MALFORMED_JSON, "The frame is not valid JSON.")

    # --- client messages -----------------------------------------------------------------------

    async def on_ping(self, content: dict) -> None:
        await self.send_json({"type": "pong"})

    async def on_message(self, content: dict) -> None:
        text = content.get("message_text", content.get("content", content.get("message")))
        if not isinstance(text, str):
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`message_text` must be text.")
        key = content.get("idempotency_key") or ""
        if not isinstance(key, str):
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`idempotency_key` must be text.")
        client = self.scope.get("client") or [None]
        turn_id, message_id, status, created = await socket_message_submit(
            self.conversation.pk, text, key[:200], client[0], content
        )
        await self.send_json(
            {
                "type": "turn",
                "turn_id": turn_id,
                "message_id": message_id,
                "status": status,
                # An idempotency_key retry: the earlier turn, its message not stored again.
                "replayed": not created,
            }
        )
        await self.follower.follow_new(turn_id)

    async def on_resume(self, content: dict) -> None:
        await conversation_require_active(self.conversation.pk)
        after = content.get("last_event_id", 0)
        turn = await resume_turn_get(
            self.conversation.pk,
            content.get("turn_id"),
            after,
            names=("turn_id", "last_event_id"),
        )
        await self.follow(str(turn.pk), after)

    async def on_cancel(self, content: dict) -> None:
        await self.send_json(await self.requests.cancel(content))

    async def on_feedback(self, content: dict) -> None:
        await self.send_json(await self.requests.feedback(content))

    async def on_history(self, content: dict) -> None:
        await self.send_json(await self.requests.history(content))

    # --- following a turn (conversations/follower.py) ---------------------------------------

    async def follow(self, turn_id: str, after: int) -> None:
        await self.follower.follow(turn_id, after)

    async def emit_event(self, turn_id: str, env: Event) -> None:
        await self.send_json({"type": "event", "turn_id": turn_id, **env})

    async def turn_event(self, message: LayerMessage) -> None:
        await self.follower.deliver(message["turn_id"], message["event"])

    async def gap_check(self, message: dict) -> None:
        await self.follower.gap_check(message["turn_id"])

"""Socket.IO at `/socket.io` for clients written against seed 003 (`io(url, {auth: {token}})`).

An adapter like the WebSocket consumer: the same services submit messages, and each socket
follows its turns with the same reader (conversations/follower.py), so delivery is gapless and
duplicate-free here too. python-socketio does the Engine.IO/Socket.IO framing (handshake,
long-polling, WebSocket upgrade, pings, acks). Event names and shapes: docs/streaming.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import socketio
from channels.layers import get_channel_layer
from django.conf import settings

from chatbots.config_types import ChatbotConfig
from chatbots.selectors import chatbot_config_get
from config.authentication import looks_like_jwt
from config.errors import ApiError, ErrorCode, error_body
from config.input_guard import refusal, value_problem
from config.socket_limits import slot_of
from conversations import selectors, services, socket_auth, streaming
from conversations.consumers import (
    conversation_require_active,
    db,
    db_events,
    origin_allowed,
    resume_turn_get,
    socket_message_submit,
)
from conversations.event_types import Event
from conversations.follower import TurnFollower
from conversations.models import Conversation, Turn

logger = logging.getLogger(__name__)


def conversation_room(conversation_id) -> str:
    return f"conversation:{conversation_id}"


@dataclass
class SocketClient:
    """One connected socket: who it is, and the turns it follows."""

    sid: str
    origin: str | None
    ip: str | None
    user: Any = None  # a JWT's user; None for a conversation token
    conversation_id: uuid.UUID | None = None  # the conversation token's conversation
    allowed: set = field(default_factory=set)  # conversations this socket may use
    channel_name: str = ""
    follower: TurnFollower | None = None
    listener: asyncio.Task | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Turns followed for their `chat:response` only (resumed without a position).
    quiet: set = field(default_factory=set)
    turns: dict = field(default_factory=dict)  # followed turn id -> its conversation id


clients: dict[str, SocketClient] = {}


def _manager():
    # Rooms shared by every ASGI process through Redis (a room emit in one process reaches the
    # room's sockets in all of them). Token events go only to the socket following the turn, in
    # its own process, so they skip the queue (`ignore_queue`).
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "asgi")
    return socketio.AsyncRedisManager(settings.REDIS_URL, channel=f"{prefix}-socketio")


class PacketJson:
    """Engine.IO's JSON, except that an integer too long to parse (it drops such a packet with a
    logged traceback, so the client hears nothing) becomes infinity, which `value_problem`
    refuses with INVALID_INPUT like any other unsafe number."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(*args, **kwargs):
        kwargs.setdefault("parse_int", lambda s: float("inf") if len(s) > 100 else int(s))
        return json.loads(*args, **kwargs)


class Server(socketio.AsyncServer):
    """python-socketio's server, closing an Engine.IO connection that has not joined with a valid
    token WS_AUTH_TIMEOUT_SECONDS after it opened, as the WebSocket consumer does (an idle
    connection would otherwise hold its unauthenticated slot of the per-address caps). Engine.IO
    closes by sending its close packet, which clients obey; one that ignores it gets no more
    pings and is cut when Engine.IO's ping deadline passes."""

    async def _handle_event(self, eio_sid, namespace, id, data):
        """A client's event named like the server's own (`connect`, `disconnect`), or not named
        by text, is answered as an unknown event. python-socketio would run our connect handler
        for it (a second identity and channel listener on one socket) or our disconnect
        handler (the socket forgotten while it stays open, answering nothing). Only the first
        argument is passed on: a handler called with extra ones would raise instead."""
        name = data[0] if isinstance(data, list) and data else None
        if not isinstance(name, str) or name in self.reserved_events:
            name = "(reserved or missing event name)"
        payload = data[1:2] if isinstance(data, list) else []
        await super()._handle_event(eio_sid, namespace, id, [name, *payload])

    async def _handle_eio_connect(self, eio_sid, environ):
        await super()._handle_eio_connect(eio_sid, environ)
        self.start_background_task(self._close_if_unauthenticated, eio_sid)

    async def _close_if_unauthenticated(self, eio_sid) -> None:
        try:
            await asyncio.sleep(settings.WS_AUTH_TIMEOUT_SECONDS)
            if self.manager.sid_from_eio_sid(eio_sid, "/") is None and eio_sid in self.environ:
                await self.eio.disconnect(eio_sid)
        except Exception:
            logger.exception("socket.io: closing an unauthenticated connection failed")


sio = Server(
    async_mode="asgi",
    json=PacketJson,
    client_manager=_manager(),
    # Origins are checked per chatbot in `connect` (each bot has its own), as on the WebSocket.
    cors_allowed_origins="*",
    cors_credentials=False,
    logger=False,
    engineio_logger=False,
)


def asgi_app() -> socketio.ASGIApp:
    return socketio.ASGIApp(sio, socketio_path="socket.io")


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- database work (on the consumers' thread pool) -----------------------------------------------


@db
def _authenticate(token: str):
    """(user, conversation): a JWT's user, or a conversation token's conversation."""
    if looks_like_jwt(token):
        return socket_auth.jwt_user(token), None
    return None, socket_auth.token_conversation(token)


@db
def _conversation_for_user(user, conversation_id) -> Conversation | None:
    return socket_auth.user_conversation(user, conversation_id)


@db
def _conversation(conversation_id) -> Conversation | None:
    return Conversation.objects.select_related("chatbot").filter(pk=conversation_id).first()


@db
def _config(public_id: str) -> ChatbotConfig | None:
    return chatbot_config_get(public_id=public_id)


@db
def _turn(conversation_id, turn_id) -> Turn | None:
    return Turn.objects.filter(pk=turn_id, conversation_id=conversation_id).first()


@db
def _unfinished_turns(conversation_id) -> list[str]:
    rows = Turn.objects.filter(
        conversation_id=conversation_id, status__in=[Turn.Status.PENDING, Turn.Status.RUNNING]
    ).values_list("pk", flat=True)
    return [str(pk) for pk in rows]


@db
def _answer(turn_id: str) -> dict:
    turn = Turn.objects.select_related(
        "user_message__turn_asked", "assistant_message__turn_answered"
    ).get(pk=turn_id)
    return selectors.turn_answer_as_dict(turn)


@db
def _history(conversation_id, limit: int) -> list[dict]:
    return selectors.conversation_history_latest(conversation_id=conversation_id, limit=limit)


@db
def _cancel(turn: Turn) -> str:
    return services.turn_cancel(turn=turn)


# --- connecting ---------------------------------------------------------------------------------


async def _usable(client: SocketClient, conversation: Conversation) -> None:
    """A conversation this socket may use: its bot switched on, the page on an allowed site."""
    config = await _config(conversation.chatbot.public_id)
    if not origin_allowed(client.origin, config["allowed_origins"]):
        raise Refused(ErrorCode.ORIGIN_NOT_ALLOWED, "This site may not use this chatbot.")
    try:
        services.chatbot_require_active(conversation.chatbot)
    except ApiError as err:
        raise Refused(err.code, err.message) from None
    client.allowed.add(conversation.pk)


@sio.event
async def connect(sid: str, environ: dict, auth: Any) -> None:
    scope = environ.get("asgi.scope") or {}
    token = auth.get("token") if isinstance(auth, dict) else None
    client = SocketClient(
        sid=sid,
        origin=environ.get("HTTP_ORIGIN") or None,
        ip=(scope.get("client") or [None])[0],
    )
    try:
        if not isinstance(token, str) or not token:
            raise Refused(
                ErrorCode.NOT_AUTHENTICATED,
                "Connect with auth: {token: <JWT or conversation token>}.",
            )
        user, conversation = await _authenticate(token)
        if user is None and conversation is None:
            raise Refused(
                ErrorCode.NOT_AUTHENTICATED, "This token is not valid (or no longer valid)."
            )
        client.user = user
        if conversation is not None:
            await _usable(client, conversation)
            client.conversation_id = conversation.pk
    except Exception as exc:
        from config.middleware import is_dependency_down

        if isinstance(exc, Refused):
            code, message = exc.code, exc.message
        elif is_dependency_down(exc):
            logger.warning("socket.io: dependency unavailable: %s", exc)
            code = ErrorCode.SERVICE_UNAVAILABLE
            message = "The service is briefly unavailable; please reconnect in a few seconds."
        else:
            raise
        # socket.io-client: connect_error's `err.message`, and the envelope in `err.data`.
        raise socketio.exceptions.ConnectionRefusedError(
            message, error_body(code, message)
        ) from None
    if (slot := slot_of(scope)) is not None:
        slot.authenticated()
    layer = get_channel_layer()
    client.channel_name = await layer.new_channel()
    client.follower = TurnFollower(
        channel_layer=layer,
        channel_name=client.channel_name,
        emit=lambda turn_id, env: _emit_event(client, turn_id, env),
        read_db=db_events,
        redis=streaming.loop_event_redis,
    )
    clients[sid] = client
    client.listener = asyncio.ensure_future(_listen(client, layer))
    sio.start_background_task(_after_connect, client, auth)


async def _after_connect(client: SocketClient, auth: dict) -> None:
    """Once the client has its CONNECT answer: join the conversation's room, then resume."""
    for _ in range(500):
        if sio.manager.is_connected(client.sid, "/"):
            break
        await asyncio.sleep(0.01)
    client.ready.set()
    if client.conversation_id is not None or auth.get("sessionId") is not None:
        await _guarded(client, _resume_on_connect(client, auth))


async def _resume_on_connect(client: SocketClient, auth: dict) -> None:
    """Join the conversation's room (the token's, or a JWT client's `auth.sessionId`), then with
    `auth.turnId` + `auth.lastEventId` send every event after it. Without a position, a turn
    still running is followed for its `chat:response` only: a seed 003 client that reconnects
    mid-answer gets the answer once."""
    conversation_id = await _conversation_id_for(client, auth)
    await _join(client, conversation_id)
    if auth.get("turnId") is not None:
        await _resume(client, conversation_id, auth.get("turnId"), auth.get("lastEventId"))
        return
    for turn_id in await _unfinished_turns(conversation_id):
        if turn_id in client.turns:
            continue
        client.quiet.add(turn_id)
        client.turns[turn_id] = str(conversation_id)
        async with client.lock:
            await client.follower.follow(turn_id, 0)


async def _join(client: SocketClient, conversation_id) -> None:
    room = conversation_room(conversation_id)
    if room not in sio.rooms(client.sid):
        await sio.enter_room(client.sid, room)
        await _emit(client, "session:joined", {"sessionId": str(conversation_id)})


async def _listen(client: SocketClient, layer) -> None:
    """The socket's channel: live frames of the turns it follows, and gap checks."""
    while True:
        message = await layer.receive(client.channel_name)
        async with client.lock:
            if message.get("type") == "turn.event":
                await client.follower.deliver(message["turn_id"], message["event"])
            elif message.get("type") == "gap.check":
                await client.follower.gap_check(message["turn_id"])


@sio.event
async def disconnect(sid: str, reason: Any = None) -> None:
    client = clients.pop(sid, None)
    if client is None:
        return
    if client.listener is not None:
        client.listener.cancel()
    if client.follower is not None:
        await client.follower.stop()


# --- sending ------------------------------------------------------------------------------------


async def _emit(client: SocketClient, event: str, data: dict) -> None:
    await client.ready.wait()
    await sio.emit(event, data, to=client.sid, ignore_queue=True)


async def _emit_room(conversation_id, event: str, data: dict) -> None:
    await sio.emit(event, data, room=conversation_room(conversation_id))


async def _emit_event(client: SocketClient, turn_id: str, env: Event) -> None:
    """One logged event: `chat:token` for text, `chat:event` for the rest, then at the end the
    whole answer as `chat:response`."""
    conversation_id = client.turns.get(turn_id, str(client.conversation_id or ""))
    quiet = turn_id in client.quiet
    if not quiet:
        base = {"sessionId": conversation_id, "turnId": turn_id, "id": env["id"]}
        if env["event"] == "token":
            text = env["data"].get("text", "")
            await _emit(client, "chat:token", {**base, "content": text, "token": text})
        else:
            await _emit(
                client,
                "chat:event",
                {**base, "event": env["event"], "data": env["data"], "timestamp": env["timestamp"]},
            )
    if env["event"] == streaming.TERMINAL_EVENT:
        client.quiet.discard(turn_id)
        client.turns.pop(turn_id, None)
        answer = await _answer(turn_id)
        response = answer["response"] or {}
        await _emit(
            client,
            "chat:response",
            {
                **answer,
                "turnId": turn_id,
                "lastEventId": env["id"],
                # Seed 003's client reads `data.content`: the whole answer, as stored.
                "content": response.get("content", ""),
                "message_id": response.get("message_id"),
                "direction": "outgoing",
            },
        )


async def _error(client: SocketClient, code: str, message: str, details=None) -> None:
    await _emit(client, "error", error_body(code, message, details))


async def _guarded(client: SocketClient, work) -> dict | None:
    """An event's work: a refusal becomes an `error` event (and the ack), the socket stays."""
    from config.middleware import is_dependency_down

    try:
        return await work
    except ApiError as err:
        await _error(client, err.code, err.message, err.details)
        return error_body(err.code, err.message, err.details)
    except Exception as exc:
        if not is_dependency_down(exc):
            raise
        logger.warning("socket.io: dependency unavailable: %s", exc)
        message = "The service is briefly unavailable; please try again in a few seconds."
        await _error(client, ErrorCode.SERVICE_UNAVAILABLE, message)
        return error_body(ErrorCode.SERVICE_UNAVAILABLE, message)


# --- client events ------------------------------------------------------------------------------


def _payload(data: Any) -> dict:
    if not isinstance(data, dict):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "Send an object, e.g. {sessionId, content}.")
    if (found := value_problem(data)) is not None:
        raise refusal(*found)
    return data


async def _conversation_id_for(client: SocketClient, data: dict) -> uuid.UUID:
    """The event's conversation: the token's own, or `sessionId` for a JWT client."""
    wanted = data.get("sessionId")
    if client.conversation_id is not None:
        if wanted is not None and str(wanted) != str(client.conversation_id):
            raise ApiError(
                ErrorCode.CONVERSATION_NOT_FOUND,
                "No conversation with this id for the token given.",
            )
        await conversation_require_active(client.conversation_id)
        return client.conversation_id
    try:
        conversation_id = uuid.UUID(str(wanted))
    except ValueError:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR, "`sessionId` must be a session id (POST /api/sessions)."
        ) from None
    if conversation_id not in client.allowed:
        conversation = await _conversation_for_user(client.user, conversation_id)
        if conversation is None:
            raise ApiError(
                ErrorCode.CONVERSATION_NOT_FOUND,
                "No conversation with this id for the credentials given.",
            )
        try:
            await _usable(client, conversation)
        except Refused as refused:
            raise ApiError(refused.code, refused.message) from None
        await _join(client, conversation_id)
    else:
        await conversation_require_active(conversation_id)
    return conversation_id


async def _with_client(sid: str, handler, data: Any):
    client = clients.get(sid)
    if client is None:
        return None
    return await _guarded(client, handler(client, data))


@sio.on("chat:message")
async def chat_message(sid: str, data: Any = None):
    return await _with_client(sid, _on_message, data)


async def _on_message(client: SocketClient, data: Any) -> dict:
    data = _payload(data)
    conversation_id = await _conversation_id_for(client, data)
    text = data.get("content", data.get("message", data.get("message_text")))
    if not isinstance(text, str):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`content` must be text.")
    key = data.get("idempotencyKey", data.get("idempotency_key")) or ""
    if not isinstance(key, str):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`idempotencyKey` must be text.")
    turn_id, message_id, status, created = await socket_message_submit(
        conversation_id, text, key[:200], client.ip, data
    )
    replayed = not created
    client.turns[turn_id] = str(conversation_id)
    accepted = {
        "sessionId": str(conversation_id),
        "turnId": turn_id,
        "messageId": message_id,
        "status": status,
        "replayed": replayed,  # an idempotencyKey retry: the earlier turn, nothing stored again
    }
    # To the conversation's room: every socket of the conversation, in any process, learns of
    # the turn (and may follow it with chat:resume); this socket follows it at once.
    await _emit_room(conversation_id, "chat:turn", accepted)
    async with client.lock:
        await client.follower.follow_new(turn_id)
    return accepted


@sio.on("chat:history")
async def chat_history(sid: str, data: Any = None):
    return await _with_client(sid, _on_history, data if data is not None else {})


async def _on_history(client: SocketClient, data: Any) -> dict:
    data = _payload(data)
    conversation_id = await _conversation_id_for(client, data)
    limit = data.get("limit", 50)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 500:
        limit = 50
    history = {
        "sessionId": str(conversation_id),
        "messages": await _history(conversation_id, limit),
    }
    await _emit(client, "chat:history", history)
    return history


@sio.on("chat:resume")
async def chat_resume(sid: str, data: Any = None):
    return await _with_client(sid, _on_resume, data)


async def _on_resume(client: SocketClient, data: Any) -> dict:
    data = _payload(data)
    conversation_id = await _conversation_id_for(client, data)
    return await _resume(client, conversation_id, data.get("turnId"), data.get("lastEventId", 0))


async def _resume(client: SocketClient, conversation_id, turn_id: Any, after: Any) -> dict:
    after = 0 if after is None else after
    # A resume point gone or never existed: the same answer as polling and the WebSocket.
    turn = await resume_turn_get(conversation_id, turn_id, after, names=("turnId", "lastEventId"))
    client.turns[str(turn.pk)] = str(conversation_id)
    client.quiet.discard(str(turn.pk))
    async with client.lock:
        await client.follower.follow(str(turn.pk), after)
    return {"sessionId": str(conversation_id), "turnId": str(turn.pk), "lastEventId": after}


@sio.on("chat:cancel")
async def chat_cancel(sid: str, data: Any = None):
    return await _with_client(sid, _on_cancel, data)


async def _on_cancel(client: SocketClient, data: Any) -> dict:
    data = _payload(data)
    conversation_id = await _conversation_id_for(client, data)
    try:
        turn_uuid = uuid.UUID(str(data.get("turnId")))
    except ValueError:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`turnId` must be a turn id.") from None
    turn = await _turn(conversation_id, turn_uuid)
    if turn is None:
        raise ApiError(ErrorCode.TURN_NOT_FOUND, "No such turn in this conversation.")
    return {"turnId": str(turn.pk), "status": await _cancel(turn)}


@sio.on("*")
async def unknown_event(event: str, sid: str, data: Any = None):
    client = clients.get(sid)
    if client is not None:
        await _error(
            client,
            ErrorCode.VALIDATION_ERROR,
            "Unknown event; use chat:message, chat:history, chat:resume or chat:cancel.",
        )

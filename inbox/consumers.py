"""WebSocket `/ws/inbox/`: the inbox page's live updates, authenticated by the admin session.

The socket joins its user's shops' groups and hears `inbox.changed` nudges (counts and lists
are read again, scoped by the access rule); an opened conversation's human turn is followed
with the one reader of the event log (conversations/follower.py), so the agent sees the
customer's messages and typing gaplessly. While open, an agent's socket keeps them "online"
for their shops (inbox.services.agent_presence_set), which is what lets customers reach a person.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts import access
from accounts.models import Role
from config.errors import ApiError, ErrorCode, error_frame
from config.input_guard import frame_refusal
from config.socket_limits import slot_of
from conversations.consumers import consumer_follower
from conversations.event_types import Event, LayerMessage
from inbox import selectors, services

logger = logging.getLogger(__name__)


def _same_origin(scope) -> bool:
    """The page that opens this socket is the admin itself: its Origin's host must be the Host
    the socket was opened on (a session cookie rides along from any site otherwise)."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    if not origin:
        return True  # not a browser: a server-side client has no victim's cookie to abuse
    return bool(host) and urllib.parse.urlsplit(origin).netloc == host


@database_sync_to_async
def _shops(user) -> tuple[list[int] | None, list[int]]:
    """(shops to hear of: None = every shop; shops where the user answers as an agent)."""
    if access.is_operator(user):
        return None, []
    return (
        access.shop_ids_for(user, min_role=Role.VIEWER),
        access.shop_ids_for(user, min_role=Role.AGENT),
    )


@database_sync_to_async
def _counts(user) -> dict[str, int]:
    return selectors.inbox_counts(user=user)


@database_sync_to_async
def _human_turn(user, conversation_id) -> str | None:
    conversation = selectors.conversation_for_staff(user=user, conversation_id=conversation_id)
    return str(conversation.human_turn_id) if conversation.human_turn_id else None


@database_sync_to_async
def _visible(user, conversation_id) -> bool:
    try:
        selectors.conversation_for_staff(user=user, conversation_id=conversation_id)
    except ApiError:
        return False
    return True


@database_sync_to_async
def _typing(user, conversation_id, typing: bool) -> None:
    services.agent_typing(conversation_id=conversation_id, agent=user, typing=typing)


@database_sync_to_async
def _presence(user_id: int, shop_ids: list[int], online: bool) -> None:
    services.agent_presence_set(user_id=user_id, shop_ids=shop_ids, online=online)


ALL_SHOPS_GROUP = services.ALL_SHOPS_GROUP


class InboxConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.groups_joined: list[str] = []
        self.agent_shops: list[int] = []
        self.presence_task: asyncio.Task | None = None
        self.follower = consumer_follower(self)
        self.turn_conversation: dict[str, str] = {}
        await self.accept()
        if not _same_origin(self.scope):
            await self.send_error(ErrorCode.ORIGIN_NOT_ALLOWED, "Open the inbox from the admin.")
            await self.close(code=4403)
            return
        if self.user is None or not self.user.is_authenticated or not self.user.is_active:
            await self.send_error(ErrorCode.NOT_AUTHENTICATED, "Sign in to the admin first.")
            await self.close(code=4401)
            return
        visible, self.agent_shops = await _shops(self.user)
        if visible is not None and not visible:
            await self.send_error(ErrorCode.PERMISSION_DENIED, "Only shop members use the inbox.")
            await self.close(code=4403)
            return
        if (slot := slot_of(self.scope)) is not None:
            slot.authenticated()
        self.groups_joined = (
            [ALL_SHOPS_GROUP] if visible is None else [services.inbox_group(s) for s in visible]
        )
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        if self.agent_shops:
            await _presence(self.user.pk, self.agent_shops, True)
            self.presence_task = asyncio.ensure_future(self.keep_present())
        await self.send_json({"type": "ready", "counts": await _counts(self.user)})

    async def keep_present(self) -> None:
        while True:
            await asyncio.sleep(max(settings.INBOX_PRESENCE_SECONDS / 3, 1))
            try:
                await _presence(self.user.pk, self.agent_shops, True)
            except Exception:
                logger.warning("inbox: could not refresh presence of user %s", self.user.pk)

    async def disconnect(self, code: int) -> None:
        if self.presence_task is not None:
            self.presence_task.cancel()
            try:
                await _presence(self.user.pk, self.agent_shops, False)
            except Exception:
                logger.warning("inbox: could not clear presence of user %s", self.user.pk)
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if (follower := getattr(self, "follower", None)) is not None:
            await follower.stop()

    async def send_error(self, code: str, message: str, details: dict | None = None) -> None:
        await self.send_json(error_frame(code, message, details))

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_error(ErrorCode.VALIDATION_ERROR, "Send JSON text frames.")
            return
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            await self.send_error(ErrorCode.MALFORMED_JSON, "The frame is not valid JSON.")

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if (err := frame_refusal(content)) is not None:
            await self.send_error(err.code, err.message, err.details)
            return
        kind = content.get("type")
        try:
            if kind == "ping":
                await self.send_json({"type": "pong"})
            elif kind == "open":
                await self.on_open(content)
            elif kind == "typing":
                await _typing(
                    self.user, self._conversation_id(content), bool(content.get("typing"))
                )
            else:
                await self.send_error(
                    ErrorCode.VALIDATION_ERROR, "Unknown message type; use open, typing or ping."
                )
        except ApiError as err:
            await self.send_error(err.code, err.message, err.details)

    def _conversation_id(self, content: dict) -> uuid.UUID:
        try:
            return uuid.UUID(str(content.get("conversation_id")))
        except ValueError as exc:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR, "`conversation_id` must be a conversation id."
            ) from exc

    async def on_open(self, content: dict) -> None:
        """Follow the conversation's human turn from `last_event_id` (0: from its start)."""
        conversation_id = self._conversation_id(content)
        after = content.get("last_event_id", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`last_event_id` must be a whole number.")
        turn_id = await _human_turn(self.user, conversation_id)
        if turn_id is None:
            return
        self.turn_conversation[turn_id] = str(conversation_id)
        await self.follower.follow(turn_id, after)

    async def emit_event(self, turn_id: str, env: Event) -> None:
        await self.send_json(
            {
                "type": "event",
                "conversation_id": self.turn_conversation.get(turn_id),
                "turn_id": turn_id,
                **env,
            }
        )

    # --- channel layer ---------------------------------------------------------------------

    async def turn_event(self, message: LayerMessage) -> None:
        await self.follower.deliver(message["turn_id"], message["event"])

    async def gap_check(self, message: dict) -> None:
        await self.follower.gap_check(message["turn_id"])

    async def inbox_changed(self, message: dict) -> None:
        conversation_id = message.get("conversation_id")
        if self.groups_joined == [ALL_SHOPS_GROUP] or await _visible(self.user, conversation_id):
            await self.send_json(
                {
                    "type": "changed",
                    "conversation_id": conversation_id,
                    "change": message.get("change", ""),
                    "counts": await _counts(self.user),
                }
            )

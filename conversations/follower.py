"""Following a turn for one client: what every push transport adapts (WebSocket, Socket.IO,
the inbox). Gapless and duplicate-free: subscribe to the turn's group first, then replay the
logged events after the client's last id, then forward live frames, dropping ids already sent
and filling any gap from the logs (zulip's "subscribe, load, apply"; docs/streaming.md). The
logs are read through the event log's async door (conversations.eventlog.events_after)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from conversations import eventlog, streaming
from conversations.event_types import Event

Emit = Callable[[str, Event], Awaitable[None]]


class TurnFollower:
    """The turns one client follows, and where each stands.

    The owner subscribes `channel_name` on `channel_layer` and hands this follower the messages
    that arrive there: `turn.event` to `deliver(turn_id, event)`, `gap.check` to `gap_check`.
    `emit(turn_id, env)` sends one event to the client, in id order, each id once.
    """

    REPLAY_BATCH = 1000

    def __init__(
        self,
        *,
        channel_layer,
        channel_name: str,
        emit: Emit,
        read_db: eventlog.ReadDb,
        redis: eventlog.Redis,
    ) -> None:
        self.channel_layer = channel_layer
        self.channel_name = channel_name
        self.emit = emit
        self.read_db = read_db
        self.redis = redis
        self.following: dict[str, dict[str, Any]] = {}
        self.stopped = False

    async def follow(self, turn_id: str, after: int) -> None:
        if self.stopped:
            return  # the client left while this request was on its way: subscribe nothing
        state = self.following.get(turn_id)
        if state is None:
            state = self.following[turn_id] = {"next": after + 1, "held": {}}
            # Subscribe first, then replay: nothing published in between can be missed.
            await self.channel_layer.group_add(streaming.turn_group(turn_id), self.channel_name)
            if self.stopped:  # stop() ran during the subscribe
                await self.channel_layer.group_discard(
                    streaming.turn_group(turn_id), self.channel_name
                )
                return
        else:
            state["next"] = min(state["next"], after + 1)
        await self.fill_from_logs(turn_id)

    async def follow_new(self, turn_id: str) -> None:
        """Follow a turn from its start unless already followed: a message sent while a person
        answers returns the human turn this client may be following already (docs/inbox.md),
        and following it again from 0 would send its events twice."""
        if turn_id not in self.following:
            await self.follow(turn_id, 0)

    async def stop(self) -> None:
        self.stopped = True
        for turn_id in list(self.following):
            await self.channel_layer.group_discard(streaming.turn_group(turn_id), self.channel_name)
        self.following.clear()

    async def fill_from_logs(self, turn_id: str) -> None:
        state = self.following.get(turn_id)
        while state is not None:
            events = await eventlog.events_after(
                turn_id,
                state["next"] - 1,
                self.REPLAY_BATCH,
                redis=self.redis,
                read_db=self.read_db,
            )
            if not events:
                return
            for env in events:
                await self.deliver(turn_id, env)
            state = self.following.get(turn_id)
            if len(events) < self.REPLAY_BATCH:
                return

    def _schedule_gap_check(self, turn_id: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(
            delay,
            lambda: asyncio.ensure_future(
                self.channel_layer.send(
                    self.channel_name, {"type": "gap.check", "turn_id": turn_id}
                )
            ),
        )

    async def deliver(self, turn_id: str, env: Event) -> None:
        state = self.following.get(turn_id)
        if state is None or env["id"] < state["next"]:
            return
        if env["id"] > state["next"]:
            # A gap: hold this frame and fetch the missing ones from the logs shortly.
            state["held"][env["id"]] = env
            if not state.get("gap_check"):
                state["gap_check"] = True
                self._schedule_gap_check(turn_id, 0.2)
            return
        state["next"] += 1
        if env["event"] == streaming.TERMINAL_EVENT:
            self.following.pop(turn_id, None)
            await self.channel_layer.group_discard(streaming.turn_group(turn_id), self.channel_name)
            await self.emit(turn_id, env)
            return
        await self.emit(turn_id, env)
        while state["next"] in state["held"]:
            await self.deliver(turn_id, state["held"].pop(state["next"]))
            if turn_id not in self.following:
                return

    async def gap_check(self, turn_id: str) -> None:
        state = self.following.get(turn_id)
        if state is None:
            return
        state["gap_check"] = False
        await self.fill_from_logs(turn_id)
        state = self.following.get(turn_id)
        if state is not None and state["held"]:
            while state is not None and state["next"] in state["held"]:
                await self.deliver(turn_id, state["held"].pop(state["next"]))
                state = self.following.get(turn_id)
            if state is not None and state["held"] and not state.get("gap_check"):
                state["gap_check"] = True
                self._schedule_gap_check(turn_id, 0.3)

"""A turn's event stream: ids, token coalescing, live fan-out and the durable logs.

Every event gets the next id of its turn (1, 2, 3 … with no gaps). It is appended to a capped
Redis Stream and published to the turn's channel-layer group in one Redis round trip, and
appended to PostgreSQL in batches. The channel layer delivers at most once, so readers that
(re)connect replay from the logs (conversations.eventlog, the one reader) and drop ids they
already have.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings

from conversations.event_types import Event, LayerMessage

logger = logging.getLogger(__name__)

TERMINAL_EVENT = "end"


def stream_key(turn_id: str) -> str:
    return f"cb:turn:{turn_id}:events"


def turn_group(turn_id: str) -> str:
    return f"turn.{turn_id}"


def _layer_config() -> dict[str, Any]:
    """The channel layer's CONFIG (mypy types the settings' literal by its values' join)."""
    return cast(dict[str, Any], settings.CHANNEL_LAYERS["default"]["CONFIG"])


def group_channel(turn_id: str) -> str:
    """The Redis channel RedisPubSubChannelLayer uses for the turn's group."""
    prefix = _layer_config().get("prefix", "asgi")
    return f"{prefix}__group__{turn_group(turn_id)}"


# --- Where a turn's log lives (docs/benchmarks.md "Past one machine") ----------------------------
# The channel layer may span several Redis servers (EVENT_REDIS_URLS, its `hosts`); it puts each
# group's channel on one of them by a hash of the channel's name. A turn's event stream lives on
# the server its group channel is on, so appending and announcing an event stay one atomic
# script on one server. tests/test_event_shards.py fails if channels-redis changes its choice.


def event_hosts() -> list[str]:
    return list(_layer_config()["hosts"])


def shard_of_channel(channel: str, shards: int) -> int:
    if shards == 1:
        return 0
    from channels_redis.utils import _consistent_hash

    return _consistent_hash(channel, shards)


def event_host(turn_id: str) -> str:
    hosts = event_hosts()
    return hosts[shard_of_channel(group_channel(str(turn_id)), len(hosts))]


def event_redis(turn_id: str):
    """The (sync) client of the server holding this turn's event log."""
    from config.redis import get_redis

    return get_redis(event_host(turn_id))


def loop_event_redis(turn_id: str):
    """The running event loop's client of the server holding this turn's event log."""
    from config.redis import loop_redis

    return loop_redis(event_host(turn_id))


def event_redis_all() -> list:
    """A sync client per server holding event logs (maintenance, erasure)."""
    from config.redis import get_redis

    return [get_redis(host) for host in event_hosts()]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(seq: int, event: str, data: dict[str, Any]) -> Event:
    return {"id": seq, "event": event, "data": data, "timestamp": now_iso()}


def layer_message(turn_id: str, env: Event) -> LayerMessage:
    return {"type": "turn.event", "turn_id": turn_id, "event": env}


def _serializer() -> Callable[[LayerMessage], bytes]:
    from channels.layers import get_channel_layer

    return get_channel_layer().serialize


# KEYS: stream, channel. ARGV: maxlen, id, payload, ttl (0 = leave the expiry), message.
# An id not above the stream's last (an earlier attempt whose reply was lost) fails the XADD
# with "equal or smaller", before anything is published again.
_APPEND_AND_PUBLISH = """
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[2], 'e', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return redis.call('PUBLISH', KEYS[2], ARGV[5])
"""


def frame_append_sync(redis, turn_id: str, env: Event, *, ttl: int) -> None:
    """The sync door of the one writer (the reaper, the inbox, services): the very script
    FrameWriter runs, XADD then PUBLISH on the turn's server, atomically. Raises what Redis
    raises ("equal or smaller" for an id already there)."""
    redis.register_script(_APPEND_AND_PUBLISH)(
        keys=[stream_key(turn_id), group_channel(turn_id)],
        args=[
            settings.STREAM_REDIS_MAXLEN,
            f"0-{env['id']}",
            json.dumps(env, separators=(",", ":")),
            ttl,
            _serializer()(layer_message(turn_id, env)),
        ],
    )


class _GroupWriter:
    """One write in flight; everything handed in meanwhile goes into the next write.

    Subclasses write a group of items and settle each item's future (`_settle`), or hand an
    item back (`self._waiting.append`) to go into the next write.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self.writes = 0

    async def _submit(self, item: Any) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            self.writes += 1
            await self._write(group)

    async def _write(self, group: list[tuple[Any, asyncio.Future]]) -> None:
        raise NotImplementedError


class FrameWriter(_GroupWriter):
    """Appends and publishes the frames of every turn of one worker process, in shared round trips.

    Per-command overhead of redis-py's asyncio client (pool, retry wrapper, hooks) was ~30% of a
    worker at 200 streams; here a pipeline carries every frame handed in while the previous one
    was in flight. Each frame is still its own script call (atomic XADD, EXPIRE, PUBLISH) and
    gets its own result, so one frame's error ("equal or smaller" after a lost reply) does not
    touch the others.
    """

    def __init__(self, redis) -> None:
        super().__init__()
        self.redis = redis
        self.script = redis.register_script(_APPEND_AND_PUBLISH)

    async def append(self, keys: list, args: list) -> None:
        await self._submit((keys, args))

    async def _write(self, group: list[tuple[Any, asyncio.Future]]) -> None:
        from redis.exceptions import NoScriptError

        try:
            pipe = self.redis.pipeline(transaction=False)
            for (keys, args), _ in group:
                pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
            if any(isinstance(r, NoScriptError) for r in results):
                # A restarted Redis has forgotten the script: load it, send those frames again.
                await self.redis.script_load(_APPEND_AND_PUBLISH)
        except Exception as exc:
            for _, future in group:
                _settle(future, exc)
            return
        for (item, future), result in zip(group, results, strict=True):
            if isinstance(result, NoScriptError):
                self._waiting.append((item, future))
            else:
                _settle(future, result if isinstance(result, Exception) else None)


class ShardedFrameWriter:
    """A FrameWriter per event-log server; each frame goes to its turn's server (its keys are
    the turn's stream and group channel)."""

    def __init__(self, writers: list[FrameWriter]) -> None:
        self.writers = writers

    async def append(self, keys: list, args: list) -> None:
        await self.writers[shard_of_channel(keys[1], len(self.writers))].append(keys, args)


def frame_writer_for_hosts(default_redis) -> FrameWriter | ShardedFrameWriter:
    """The worker's frame writer: `default_redis` (REDIS_URL's asyncio client) when the event
    log is on REDIS_URL alone, else one writer per server in EVENT_REDIS_URLS order."""
    from config.redis import new_async_redis

    hosts = event_hosts()
    writers = [
        FrameWriter(default_redis if host == settings.REDIS_URL else new_async_redis(host))
        for host in hosts
    ]
    return writers[0] if len(writers) == 1 else ShardedFrameWriter(writers)


class RelayLag:
    """How far behind this worker's event loop runs, as the lateness of the publishers' frame
    timers (an exponential average), and the frame interval that follows from it.

    A frame costs the same in every tier whatever it carries (the worker's script call, Redis,
    Daphne's pub/sub receive and WebSocket send, the client), so when the relay falls behind,
    frames grow: the interval goes from STREAM_FRAME_INTERVAL_MS towards
    STREAM_FRAME_INTERVAL_MAX_MS as the timers run late, and back as they catch up. The first
    token of a turn is never held (TurnPublisher.token)."""

    def __init__(self) -> None:
        self.lag = 0.0

    def observe(self, late: float) -> None:
        self.lag += 0.2 * (max(0.0, late) - self.lag)

    def interval(self) -> float:
        base = settings.STREAM_FRAME_INTERVAL_MS / 1000
        most = max(base, settings.STREAM_FRAME_INTERVAL_MAX_MS / 1000)
        return min(most, base + self.lag)


_lag_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RelayLag] = (
    weakref.WeakKeyDictionary()
)


def relay_lag() -> RelayLag:
    """The running loop's gauge (a worker has one loop; tests make many), gone with the loop."""
    return _lag_by_loop.setdefault(asyncio.get_running_loop(), RelayLag())


class TurnPublisher:
    """Writes one turn's events. Used from the worker's asyncio loop by the one runner of a turn."""

    def __init__(
        self,
        *,
        turn_id: str,
        redis,
        save_rows: Callable[[list[Event]], Any],
        first_seq: int = 1,
        frames: FrameWriter | ShardedFrameWriter | None = None,
    ) -> None:
        self.turn_id = turn_id
        self.redis = redis
        self.save_rows = save_rows  # async callable writing StreamEvent rows (and the heartbeat)
        self.next_seq = first_seq
        self.serialize = _serializer()
        self.key = stream_key(turn_id)
        self.channel = group_channel(turn_id)
        self.frame_max = settings.STREAM_FRAME_MAX_CHARS
        self.ttl = settings.STREAM_REDIS_TTL_SECONDS + settings.TURN_TOTAL_TIMEOUT
        self.pending_text: list[str] = []
        self.pending_chars = 0
        self.last_frame_at = 0.0
        self.frames_sent = 0
        self.text_sent: list[str] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._rows: list[Event] = []
        self._db_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        # Batches are written one at a time, so when the final flush returns every earlier
        # batch is in PostgreSQL too.
        self._save_lock = asyncio.Lock()
        self.first_token_at: float | None = None
        self._expire_due = True
        self.frames = frames or FrameWriter(redis)  # the worker's shared one, when given

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    async def _publish(self, event: str, data: dict[str, Any]) -> Event:
        async with self._lock:
            env = envelope(self.next_seq, event, data)
            self.next_seq += 1
            self._rows.append(env)
            if event == TERMINAL_EVENT:
                # Everything is durable in PostgreSQL before anyone can see the end.
                await self.flush_rows()
            await self._to_redis(env)
            self.frames_sent += 1
            if event != TERMINAL_EVENT:
                self._maybe_schedule_rows()
            return env

    async def _to_redis(self, env: Event) -> None:
        payload = json.dumps(env, separators=(",", ":"))
        message = self.serialize(layer_message(self.turn_id, env))
        for attempt in range(50):
            try:
                # One script call (atomic): XADD, then PUBLISH, so whoever hears of an event can
                # read it from the stream; sent with other turns' frames (FrameWriter).
                await self.frames.append(
                    [self.key, self.channel],
                    [
                        settings.STREAM_REDIS_MAXLEN,
                        f"0-{env['id']}",
                        payload,
                        # The expiry once per turn, not per frame: at its first frame, its end,
                        # and after a Redis error (a restarted server may have lost the key).
                        self.ttl if self._expire_due or env["event"] == TERMINAL_EVENT else 0,
                        message,
                    ],
                )
                self._expire_due = False
                return
            except Exception as exc:
                self._expire_due = True
                if "equal or smaller" in str(exc):
                    return  # appended by an earlier attempt whose reply was lost
                if attempt == 49:
                    logger.error(
                        "turn %s: Redis unavailable; event %s is in PostgreSQL only",
                        self.turn_id,
                        env["id"],
                    )
                    return
                await asyncio.sleep(0.2)

    async def reserve_end(self, data: dict[str, Any]) -> Event:
        """The `end` event, with its id, for the caller to store in the same transaction that
        finishes the turn; every earlier event is in PostgreSQL when this returns."""
        await self.flush_tokens()
        async with self._lock:
            await self.flush_rows()
            env = envelope(self.next_seq, TERMINAL_EVENT, data)
            self.next_seq += 1
            return env

    async def announce(self, env: Event) -> None:
        """Send an event already stored in PostgreSQL (the reserved `end`) to Redis and clients."""
        async with self._lock:
            await self._to_redis(env)
            self.frames_sent += 1

    async def token(self, text: str) -> None:
        """Queue token text; the first goes out at once, later ones are coalesced into frames."""
        if not text:
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
            self.text_sent.append(text)
            self.last_frame_at = time.monotonic()
            await self._publish("token", {"text": text})
            return
        self.pending_text.append(text)
        self.pending_chars += len(text)
        if self.pending_chars >= self.frame_max:
            await self.flush_tokens()
            return
        if self._flush_timer is None:
            lag = relay_lag()
            now = time.monotonic()
            # Not before now: a token after a pause is not "late" for a frame that was never due.
            due = max(now, self.last_frame_at + lag.interval())
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(
                max(0.0, due - now), lambda: loop.create_task(self._timer_flush(lag, due))
            )

    async def _timer_flush(self, lag: RelayLag | None = None, due: float = 0.0) -> None:
        if lag is not None:
            lag.observe(time.monotonic() - due)
        self._flush_timer = None
        await self.flush_tokens()

    async def flush_tokens(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self.pending_text:
            return
        text = "".join(self.pending_text)
        self.pending_text.clear()
        self.pending_chars = 0
        self.text_sent.append(text)
        self.last_frame_at = time.monotonic()
        await self._publish("token", {"text": text})

    async def emit(self, event: str, data: dict[str, Any]) -> Event:
        """A non-token event; tokens queued before it go out first so order is kept."""
        await self.flush_tokens()
        return await self._publish(event, data)

    def _maybe_schedule_rows(self) -> None:
        if self._db_task is None or self._db_task.done():
            self._db_task = asyncio.get_running_loop().create_task(self._rows_loop())

    async def _rows_loop(self) -> None:
        while self._rows:
            await asyncio.sleep(settings.STREAM_DB_FLUSH_SECONDS)
            await self.flush_rows(final=False)

    async def flush_rows(self, *, final: bool = True) -> None:
        """Append buffered events to PostgreSQL; on failure keep them and try again."""
        attempts = 0
        while True:
            async with self._save_lock:
                rows, self._rows = self._rows, []
                if not rows:
                    return
                try:
                    await self.save_rows(rows)
                    continue
                except Exception as exc:
                    self._rows = rows + self._rows
                    attempts += 1
                    logger.warning(
                        "turn %s: could not store %d events yet (%s)", self.turn_id, len(rows), exc
                    )
                    if not final:
                        return
                    if attempts >= 20:
                        raise
            await asyncio.sleep(min(0.25 * attempts, 2.0))

    def text(self) -> str:
        return "".join(self.text_sent)

    async def aclose(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._db_task is not None and not self._db_task.done():
            self._db_task.cancel()
        await self.flush_rows()


class EventRowWriter(_GroupWriter):
    """Stores every turn's event rows of one worker process, in shared transactions.

    A group commit: N streaming turns cost one transaction per write instead of two commits per
    turn every STREAM_DB_FLUSH_SECONDS (bench/findings.md). `save` returns once the rows are
    committed, which keeps TurnPublisher.reserve_end's promise that every earlier event is in
    PostgreSQL. A failed shared write is retried turn by turn, so one turn's bad rows (its turn
    deleted meanwhile) cannot hold back the others.
    """

    def __init__(self, run_db: Callable[..., Any], save_many: Callable[[list], Any]) -> None:
        super().__init__()
        self.run_db = run_db  # async: runs a sync function on a database thread
        self.save_many = save_many  # sync: [(turn_id, rows), …] in one transaction

    async def save(self, turn_id: str, rows: list[Event]) -> None:
        await self._submit((turn_id, rows))

    async def _write(self, group: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            await self.run_db(self.save_many, [item for item, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            logger.warning("event rows: a shared write failed (%s); storing turn by turn", exc)
            for item, future in group:
                try:
                    await self.run_db(self.save_many, [item])
                except Exception as one_exc:
                    _settle(future, one_exc)
                else:
                    _settle(future, None)
            return
        for _, future in group:
            _settle(future, None)


def _settle(future: asyncio.Future, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


def decode_entries(entries) -> list[Event]:
    events: list[Event] = []
    for _entry_id, fields in entries:
        raw = fields.get(b"e") or fields.get("e")
        if raw is not None:
            events.append(json.loads(raw))
    return events


def rows_to_models(turn_id: str, rows: list[Event]):
    from conversations.models import StreamEvent

    return [
        StreamEvent(
            turn_id=turn_id,
            seq=env["id"],
            event=env["event"],
            data=env["data"],
            created_at=dt.datetime.fromisoformat(env["timestamp"].replace("Z", "+00:00")),
        )
        for env in rows
    ]

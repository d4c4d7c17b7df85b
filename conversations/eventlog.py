"""The one reader of a turn's event log (issue #16 item 2; the writer is conversations.streaming).

A turn's events are in two logs: the Redis stream is complete while the turn runs (PostgreSQL
lags by up to one batch); PostgreSQL is complete once the turn has finished (Redis may have
expired, or missed events while it was away). Reading both follows one rule, written once here
as pure functions over what each log returned: PostgreSQL is read only when Redis does not hold
the next event (`db_needed`), and the two answers merge gapless, in order, each id once
(`merge_contiguous`). Two doors do only the I/O around the rule:

- `events_after_sync`: the sync Redis client and the ORM (REST and SSE pages, resume checks,
  through selectors.stream_events_after);
- `events_after`: the event loop's Redis client and the caller's own database executor (the
  followers of WebSocket, Socket.IO and the inbox, conversations.follower).

Polling's fast path (conversations.polling) reads Redis alone in one pipelined round trip (no
query) and hands the poll to the sync door when its page does not start at the next event
(`db_needed`), or in the other cases polling.py lists; an empty page it answers itself from the
turn's last event in Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from conversations import streaming
from conversations.event_types import Event

ReadDb = Callable[[str, int, int], Awaitable[list[Event]]]
Redis = Callable[[str], Any]  # turn id -> the loop's client of the server holding its log


def db_needed(after: int, from_redis: list[Event]) -> bool:
    """Whether PostgreSQL must be read for the events after `after`, given Redis's answer.

    Only when Redis lacks the start of the range (expired, or written while Redis was away): a
    gap further on ends the page at the gap (`merge_contiguous`), and the next page, starting
    there, reads PostgreSQL."""
    return not from_redis or from_redis[0]["id"] != after + 1


def merge_contiguous(after: int, *sources: list[Event], limit: int) -> list[Event]:
    """Events after `after` from several logs, deduplicated, in order, stopping at any gap."""
    by_id: dict[int, Event] = {}
    for source in sources:
        for env in source:
            if env["id"] > after:
                by_id.setdefault(env["id"], env)
    result: list[Event] = []
    expected = after + 1
    while expected in by_id and len(result) < limit:
        result.append(by_id[expected])
        expected += 1
    return result


def events_after_sync(turn_id: str, after: int, limit: int) -> list[Event]:
    """The sync door: up to `limit` events after `after`, gapless, from both logs."""
    try:
        from_redis = redis_events_after_sync(streaming.event_redis(turn_id), turn_id, after, limit)
    except Exception:
        from_redis = []  # Redis away: PostgreSQL alone answers
    from_db = db_events_after(turn_id, after, limit) if db_needed(after, from_redis) else []
    return merge_contiguous(after, from_redis, from_db, limit=limit)


async def events_after(
    turn_id: str, after: int, limit: int, *, redis: Redis, read_db: ReadDb
) -> list[Event]:
    """The async door: the same read, with `redis(turn_id)` (the loop's client of the turn's
    server) and `read_db` (db_events_after run on the caller's database executor)."""
    try:
        from_redis = await redis_events_after(redis(turn_id), turn_id, after, limit)
    except Exception:
        from_redis = []  # Redis away: PostgreSQL alone answers
    from_db = await read_db(turn_id, after, limit) if db_needed(after, from_redis) else []
    return merge_contiguous(after, from_redis, from_db, limit=limit)


def redis_events_after_sync(redis, turn_id: str, after: int, limit: int) -> list[Event]:
    entries = redis.xrange(
        streaming.stream_key(turn_id), min=f"0-{after + 1}", max="+", count=limit
    )
    return streaming.decode_entries(entries)


async def redis_events_after(redis, turn_id: str, after: int, limit: int) -> list[Event]:
    entries = await redis.xrange(
        streaming.stream_key(turn_id), min=f"0-{after + 1}", max="+", count=limit
    )
    return streaming.decode_entries(entries)


def db_events_after(turn_id: str, after: int, limit: int) -> list[Event]:
    from conversations.models import StreamEvent

    rows = StreamEvent.objects.filter(turn_id=turn_id, seq__gt=after).order_by("seq")[:limit]
    return [
        {
            "id": row.seq,
            "event": row.event,
            "data": row.data,
            "timestamp": row.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        for row in rows
    ]

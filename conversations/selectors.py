"""Read side of conversations: a turn's events after an id, from the Redis log and PostgreSQL."""

from __future__ import annotations

from typing import Any

from config.errors import ApiError, ErrorCode
from config.redis import get_redis
from conversations import streaming
from conversations.models import Turn

SESSION_STATUS = {
    Turn.Status.PENDING: "active",
    Turn.Status.RUNNING: "active",
    Turn.Status.COMPLETED: "completed",
    Turn.Status.FAILED: "failed",
    Turn.Status.CANCELLED: "cancelled",
}


def stream_events_after(*, turn: Turn, after: int, limit: int) -> dict[str, Any]:
    """Events with id > after, gapless and in order, plus where the turn stands.

    Reads both logs: the Redis stream is complete while the turn runs (PostgreSQL lags by up
    to one batch); PostgreSQL is complete once the turn has finished (Redis may have expired).
    """
    finished_before = turn.is_finished
    try:
        from_redis = streaming.redis_events_after_sync(get_redis(), str(turn.pk), after, limit)
    except Exception:
        from_redis = []
    from_db = streaming.db_events_after(str(turn.pk), after, limit)
    events = streaming.merge_contiguous(after, from_redis, from_db, limit=limit)
    if not events and finished_before and after > 0:
        if after > turn.last_event_id:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"There is no event {after} in this turn; its last event is {turn.last_event_id}.",
                status=400,
                details={"last_event_id": turn.last_event_id},
            )
        if after < turn.last_event_id:
            raise ApiError(
                ErrorCode.RESUME_POINT_GONE,
                "The events after this point have been cleaned up; load the conversation history.",
                status=410,
            )
    last_id = events[-1]["id"] if events else after
    ended = bool(events) and events[-1]["event"] == streaming.TERMINAL_EVENT
    has_more = not ended and not (finished_before and last_id >= turn.last_event_id)
    return {
        "events": events,
        "session_status": SESSION_STATUS[turn.status],
        "last_event_id": last_id,
        "has_more": has_more,
    }

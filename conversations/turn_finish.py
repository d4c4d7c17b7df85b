"""Ending one turn: its error event, its stored answer and AICall rows, its end event.

Part of the turn runner (conversations.runner): `TurnExecution.finish` hands the turn to a
`TurnFinisher`, which every way a turn ends (answer, upstream failure, timeout, cancel, a bug)
goes through once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any

from config.errors import error_event
from conversations import services
from conversations.event_types import Event
from conversations.turn_calls import ms_between
from conversations.turn_errors import TurnFailed

if TYPE_CHECKING:
    from conversations.runner import TurnExecution

# The runner's logger: its lines keep the name operators and log filters know them by.
logger = logging.getLogger("conversations.runner")


def wall_time(mono: float | None) -> dt.datetime | None:
    """The wall-clock time of a monotonic reading (None stays None)."""
    if mono is None:
        return None
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - mono)


def _stored_error(error: TurnFailed | None) -> dict[str, Any] | None:
    """The turn's error as stored with it (the category says whose fault it was)."""
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "category": error.category}


class TurnFinisher:
    """Ends a turn: timings, error event, the stored answer, then the end event."""

    def __init__(self, turn: TurnExecution) -> None:
        self.turn = turn

    def _timings_close(self, end_at: float) -> None:
        """The turn's own timings, read off the publisher, as the turn ends."""
        turn = self.turn
        first_token_at = turn.publisher.first_token_at
        turn.timings.update(
            {
                "first_token_ms": ms_between(turn.t0, first_token_at),
                "streaming_ms": ms_between(first_token_at, end_at) if first_token_at else None,
                "total_ms": ms_between(turn.t0, end_at),
            }
        )

    def _end_data(self, status: str, message_id: str | None) -> dict[str, Any]:
        """What the end event says: the outcome, the stored message, usage and timings."""
        turn = self.turn
        data: dict[str, Any] = {
            "status": status,
            "message_id": message_id,
            "flow": turn.chosen_flow["name"] if turn.chosen_flow else None,
            "usage": turn.usage,
            "timings": turn.timings,
        }
        if status == "cancelled":
            data["reason"] = turn.rt.cancel_reasons.get(turn.turn_id, "cancelled")
        return data

    async def finish(
        self, status: str, error: TurnFailed | None = None, exc: BaseException | None = None
    ) -> None:
        """End the turn: error event, stored answer, end event. `exc` is what raised, if
        anything: its traceback goes to the listeners (monitoring's error log)."""
        turn = self.turn
        pub = turn.publisher
        self._timings_close(time.monotonic())
        if error is not None:
            await pub.emit(
                "error", error_event(error.code, error.message, retryable=error.retryable)
            )
        t_persist = time.monotonic()
        text = pub.text()
        message_id = str(uuid.uuid4()) if text else None
        end = await pub.reserve_end(self._end_data(status, message_id))
        finished = await turn.rt.run_db(
            services.turn_finish,
            turn_id=turn.turn_id,
            status=status,
            text=text,
            flow=turn.chosen_flow["name"] if turn.chosen_flow else "",
            route=turn.route,
            usage=turn.usage,
            timings=turn.timings,
            sources=turn.sources,
            ai_calls=turn.calls.ai_calls,
            end_event=end,
            message_id=message_id,
            error=_stored_error(error),
            first_token_at=wall_time(pub.first_token_at),
        )
        turn.timings["persistence_ms"] = ms_between(t_persist, time.monotonic())
        if finished is None:
            # Someone else finished this turn (the reaper); its events already ended the stream.
            logger.warning("turn %s was finished elsewhere; not sending a second end", turn.turn_id)
        else:
            await self._announce_end(end, status, exc)
        await pub.aclose()

    async def _announce_end(self, end: Event, status: str, exc: BaseException | None) -> None:
        """Send the reserved end event, then store the timings only now known (persistence)
        and the traceback of what failed the turn, if anything."""
        turn = self.turn
        await turn.publisher.announce(end)
        # The time the answer took to store is known only now; keep it with the turn.
        await turn.rt.run_db(
            services.turn_timings_update,
            turn_id=turn.turn_id,
            timings=turn.timings,
            status=status,
            stack="".join(traceback.format_exception(exc)) if exc is not None else "",
        )

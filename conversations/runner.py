"""The turn runner: route, call the AI endpoint, relay tokens through the text rules, store.

Runs on the worker's asyncio loop (conversations.runtime). Every way a turn can end — answer,
upstream failure, timeout, cancel — ends its stream with an `end` event, preceded by an
`error` event for failures, and leaves the turn in a finished state.

`TurnExecution` holds one turn's state and streams its answer; its jobs are parts of their own:
the AI calls and their records (conversations.turn_calls), routing and the context providers
(conversations.turn_routing) and ending the turn (conversations.turn_finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from aiclients.errors import UpstreamError
from aiclients.types import UpstreamEvent, normalise_usage
from chatbots.config_types import ChatbotConfig, FlowConfig
from chatbots.selectors import chatbot_turn_config_get
from config.errors import customer_text
from conversations import services
from conversations.runtime import WorkerRuntime
from conversations.streaming import TurnPublisher
from conversations.textrules import StreamingRewriter
from conversations.turn_calls import AICallRecorder, ms_between
from conversations.turn_errors import MESSAGES, TurnFailed
from conversations.turn_finish import TurnFinisher
from conversations.turn_routing import TurnRouting
from conversations.turn_types import TurnWork
from tools import loop as tool_loop

# Imported from here by the worker's task, the tests and the tool loop's callers.
__all__ = ["MESSAGES", "TurnExecution", "TurnFailed", "turn_run"]

logger = logging.getLogger(__name__)


class TurnExecution:
    """One turn's state (what its parts read and write, and tools.loop too) and its answer
    stream; calling flows, routing and finishing are its parts' jobs."""

    def __init__(self, rt: WorkerRuntime, work: TurnWork, config: ChatbotConfig) -> None:
        self.rt = rt
        self.work = work
        self.config = config
        self.turn_id = work.turn_id
        self.language = config["language"] if config["language"] in ("da", "en") else "en"
        self.route: dict[str, Any] = {"mode": config["routing_mode"]}
        self.chosen_flow: FlowConfig | None = None
        self.usage: dict[str, Any] = {}
        self.sources: list | None = None
        self.timings: dict[str, Any] = {}
        self.t0 = time.monotonic()
        self.upstream_first_token: float | None = None
        self.publisher = TurnPublisher(
            turn_id=self.turn_id,
            redis=rt.redis,
            save_rows=lambda rows: rt.event_writer.save(self.turn_id, rows),
            frames=rt.frame_writer,
            first_seq=work.first_seq,
        )
        # Calls the flows and keeps their AICall records.
        self.calls = AICallRecorder(self)
        # Chooses the answer flow, runs the context providers and the answer.
        self.routing = TurnRouting(self)
        self.finisher = TurnFinisher(self)

    def text(self, key: str) -> str:
        """One of the runner's own texts (MESSAGES) in the turn's language."""
        return customer_text(MESSAGES[key], self.language)

    def run_answer(
        self, flow: FlowConfig, question: str, extra: dict[str, Any] | None
    ) -> AsyncIterator[UpstreamEvent]:
        """The answer flow's events (tools.loop runs the flow an answer transfers to). A plain
        function returning the routing's generator: no generator layer on the token path."""
        return self.routing.run_answer(flow, question, extra)

    async def finish(
        self, status: str, error: TurnFailed | None = None, exc: BaseException | None = None
    ) -> None:
        """End the turn (conversations.turn_finish): error event, stored answer, end event."""
        await self.finisher.finish(status, error, exc)

    # --- the whole turn ---------------------------------------------------------------------------

    async def stream_answer(self) -> None:
        """Relay the answer's events to the turn's stream, tokens through the text rules.
        The per-token path: keep it free of extra awaits and layers (docs/benchmarks.md)."""
        rewriter = StreamingRewriter(self.config["text_rules"])
        question = self.work.question
        async for event in self.routing.answer_events(question):
            if event.kind == "token":
                if self.upstream_first_token is None:
                    self.upstream_first_token = time.monotonic()
                await self.publisher.token(rewriter.feed(event.text))
            elif event.kind == "source_documents":
                self.sources = event.data
                await self.publisher.emit("source_documents", {"documents": event.data})
            elif event.kind == "usage":
                self.usage.update(normalise_usage(event.data))
            elif event.kind == "warning":
                # The call completed, with something worth recording (e.g. no end event).
                self.route.setdefault("warnings", []).append(event.data)
                logger.warning("turn %s: %s", self.turn_id, event.data.get("detail"))
            elif event.kind in ("tool_call", "tool_result"):
                # Text held back by the text rules goes out before the step it came before.
                await self.publisher.token(rewriter.flush())
                await self.publisher.emit(event.kind, event.data)
                tool_loop.record_passed_through(self.route, event)
        await self.publisher.token(rewriter.flush())
        await self.publisher.flush_tokens()


async def turn_run(rt: WorkerRuntime, turn_id: str) -> str:
    """Run one turn to its end. Returns its final status (or 'skipped' if not ours to run)."""
    work: TurnWork | None = await rt.run_db(services.turn_claim, turn_id=turn_id, worker=rt.name)
    if work is None:
        return "skipped"
    t0 = time.monotonic()
    # All the configuration the turn reads, templates included, in one call on a database
    # thread: on a cold cache it reads PostgreSQL, which the event loop must never do.
    # A staff preview runs against the draft or a chosen version; customers get the live one.
    config = await rt.run_db(
        chatbot_turn_config_get,
        public_id=work.chatbot_public_id,
        preview=work.preview,
    )
    execution = TurnExecution(rt, work, config)
    execution.t0 = t0
    execution.timings["config_load_ms"] = ms_between(t0, time.monotonic())
    # Its heartbeat comes with the worker's other turns' (WorkerRuntime.heartbeats).
    cancel = rt.cancel_event(turn_id)
    try:
        await execution.publisher.emit(
            "start",
            {
                "turn_id": turn_id,
                "conversation_id": work.conversation_id,
                "user_message_id": work.user_message_id,
            },
        )
        return await _turn_outcome(execution, cancel)
    except Exception as exc:
        logger.exception("turn %s failed unexpectedly", turn_id)
        with contextlib.suppress(Exception):
            await execution.finish(
                "failed",
                TurnFailed.of("INTERNAL_ERROR", execution.language),
                exc=exc,
            )
        return "failed"
    finally:
        rt.release(turn_id)


async def _turn_outcome(execution: TurnExecution, cancel: asyncio.Event) -> str:
    """Stream the answer until it ends, the turn is cancelled or its time is up, and finish
    the turn accordingly. Returns its final status."""
    streaming = asyncio.create_task(execution.stream_answer())
    cancelled = asyncio.create_task(cancel.wait())
    try:
        async with asyncio.timeout(settings.TURN_TOTAL_TIMEOUT):
            await asyncio.wait({streaming, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        await _streaming_stopped(execution, streaming)
        await execution.finish(
            "failed",
            TurnFailed.of("TURN_TIMEOUT", execution.language),
        )
        return "failed"
    finally:
        cancelled.cancel()
    if not streaming.done():
        await _streaming_stopped(execution, streaming)
        await execution.finish("cancelled")
        return "cancelled"
    try:
        streaming.result()
    except UpstreamError as err:
        await execution.finish(
            "failed",
            TurnFailed.from_upstream(err, execution.language),
            exc=err,
        )
        return "failed"
    except TurnFailed as err:
        await execution.finish("failed", err, exc=err)
        return "failed"
    await execution.finish("completed")
    return "completed"


async def _streaming_stopped(execution: TurnExecution, streaming: asyncio.Task) -> None:
    """Stop an answer the turn no longer waits for, and the Flowise predictions behind it."""
    streaming.cancel()
    with contextlib.suppress(BaseException):
        await streaming
    await execution.calls.abort_flowise()

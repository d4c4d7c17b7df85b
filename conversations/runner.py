"""The turn runner: route, call the AI endpoint, relay tokens through the text rules, store.

Runs on the worker's asyncio loop (conversations.runtime). Every way a turn can end — answer,
upstream failure, timeout, cancel — ends its stream with an `end` event, preceded by an
`error` event for failures, and leaves the turn in a finished state.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from chatbots.selectors import chatbot_turn_config_get
from config.errors import TURN_ERRORS, turn_error_text
from conversations import flow_router, services
from conversations.builtin import builtin_route, split_tokens
from conversations.hooks import TurnContext, context_providers
from conversations.runtime import WorkerRuntime
from conversations.streaming import TurnPublisher
from conversations.textrules import StreamingRewriter
from conversations.turn_calls import AICallRecorder, ms_between
from conversations.upstream.errors import UpstreamError
from conversations.upstream.types import (
    UpstreamEvent,
    normalise_usage,
)
from tools import loop as tool_loop

logger = logging.getLogger(__name__)

# Texts for situations, not codes; what each failure code tells the customer is in
# config.errors.TURN_ERRORS.
MESSAGES = {
    # UPSTREAM_TOO_LARGE for an answer past ANSWER_MAX_CHARS (the code's own text is about a
    # message too large to send).
    "too_large": {
        "da": "Svaret blev for langt og er blevet afkortet.",
        "en": "The answer was too long and has been cut off.",
    },
}


class TurnFailed(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool, category: str) -> None:
        super().__init__(code)
        self.code, self.message, self.retryable, self.category = code, message, retryable, category

    @classmethod
    def of(cls, code: str, language: str) -> TurnFailed:
        """A failure as the registry (config.errors.TURN_ERRORS) describes its code."""
        error = TURN_ERRORS[code]
        return cls(
            code,
            turn_error_text(code, language),
            retryable=error.retryable,
            category=error.category,
        )

    @classmethod
    def from_upstream(cls, err: UpstreamError, language: str) -> TurnFailed:
        """An AI client's error, its default English text put in the customer's language (a
        text the client chose for the case stays)."""
        message = (
            turn_error_text(err.code, language, default=err.message)
            if err.default_message
            else err.message
        )
        return cls(err.code, message, retryable=err.retryable, category=err.category)


class TurnExecution:
    def __init__(self, rt: WorkerRuntime, work: dict[str, Any], config: dict[str, Any]) -> None:
        self.rt = rt
        self.work = work
        self.config = config
        self.turn_id = work["turn_id"]
        self.language = config["language"] if config["language"] in ("da", "en") else "en"
        self.route: dict[str, Any] = {"mode": config["routing_mode"]}
        self.chosen_flow: dict | None = None
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
            first_seq=work["first_seq"],
        )
        # Calls the flows and keeps their AICall records.
        self.calls = AICallRecorder(self)

    def text(self, key: str) -> str:
        return MESSAGES[key][self.language]

    # --- routing --------------------------------------------------------------------------------

    async def decide_label(self, router: dict, question: str) -> str | None:
        keys = flow_router.routable_keys(self.config)
        self.route["router"] = router["name"]
        try:
            if router["endpoint"]["kind"] == "builtin":
                label = await builtin_route(
                    config=self.config, question=question, run_db=self.rt.run_db
                )
            else:
                label = flow_router.parse_label(
                    await self.calls.flow_text(router, question, purpose="router"), keys
                )
        except UpstreamError as err:
            # A router outage must not cost the customer the answer: fall back to main.
            logger.warning(
                "turn %s: router failed (%s); using the main flow", self.turn_id, err.code
            )
            self.route["router_error"] = err.code
            return None
        return label

    async def extract(self, answer: dict, question: str) -> dict | None:
        extractor = flow_router.extractor_for(self.config, answer)
        if extractor is None or extractor["endpoint"]["kind"] == "builtin":
            return None
        try:
            text = await self.calls.flow_text(extractor, question, purpose="extractor")
        except UpstreamError as err:
            logger.warning("turn %s: extractor failed (%s)", self.turn_id, err.code)
            self.route["extractor_error"] = err.code
            return None
        extracted = flow_router.parse_json_object(text)
        self.route["extractor"] = extractor["name"]
        return extracted

    async def answer_events(self, question: str) -> AsyncIterator[UpstreamEvent]:
        config = self.config
        main = flow_router.main_flow(config)
        if main is None:
            raise TurnFailed.of("NO_ANSWER_FLOW", self.language)
        router = flow_router.router_flow(config)
        t_route = time.monotonic()
        if router is None:
            self.chosen_flow = main
            extra = await self.extract(main, question)
            self.timings["routing_ms"] = ms_between(t_route, time.monotonic())
            await self._announce(None, extra)
            async for event in self.run_answer(main, question, extra):
                yield event
            return
        if config["routing_mode"] == "parallel":
            async for event in self._parallel(main, router, question, t_route):
                yield event
            return
        label = await self.decide_label(router, question)
        chosen = flow_router.answer_flow_for(config, label)
        self.chosen_flow = chosen
        extra = await self.extract(chosen, question)
        self.timings["routing_ms"] = ms_between(t_route, time.monotonic())
        await self._announce(label, extra)
        async for event in self.run_answer(chosen, question, extra):
            yield event

    async def _parallel(self, main: dict, router: dict, question: str, t_route: float):
        """Start main while the router decides; hold main's tokens until then."""
        held: asyncio.Queue = asyncio.Queue()
        done = object()

        # Providers run for main first (an image description must reach it too).
        main_ctx = await self.provide_context(main, question, None)

        async def pump() -> None:
            try:
                if main_ctx.final_answer is not None:
                    for token in split_tokens(main_ctx.final_answer):
                        await held.put(UpstreamEvent(kind="token", text=token))
                else:
                    async for event in self.calls.flow_events(
                        main, question, purpose="answer", ctx=main_ctx
                    ):
                        await held.put(event)
                await held.put(done)
            except Exception as exc:
                await held.put(exc)

        main_task = asyncio.create_task(pump())
        try:
            label = await self.decide_label(router, question)
        except BaseException:
            main_task.cancel()
            raise
        chosen = flow_router.answer_flow_for(self.config, label)
        self.chosen_flow = chosen
        # Execution statistics (analytics.selectors.execution_statistics): did the main flow
        # started beside the router serve the answer, or was its call wasted?
        self.route["parallel"] = "released" if chosen["id"] == main["id"] else "aborted"
        if chosen["id"] == main["id"]:
            self.timings["routing_ms"] = ms_between(t_route, time.monotonic())
            await self._announce(label, None)
            try:
                while True:
                    item = await held.get()
                    if item is done:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                main_task.cancel()
        main_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main_task
        await self.calls.abort_flowise(only=main)
        extra = await self.extract(chosen, question)
        self.timings["routing_ms"] = ms_between(t_route, time.monotonic())
        await self._announce(label, extra)
        async for event in self.run_answer(chosen, question, extra):
            yield event

    async def run_answer(
        self, flow: dict, question: str, extra: dict | None
    ) -> AsyncIterator[UpstreamEvent]:
        """Let the context providers look first, then run the answer flow (or their answer)."""
        ctx = await self.provide_context(flow, question, extra)
        if ctx.final_answer is not None:
            for token in split_tokens(ctx.final_answer):
                yield UpstreamEvent(kind="token", text=token)
            return
        async for event in self.calls.flow_events(
            flow, question, purpose="answer", extra=extra, ctx=ctx
        ):
            yield event

    async def provide_context(self, flow: dict, question: str, extra: dict | None) -> TurnContext:
        ctx = TurnContext(
            turn_id=self.turn_id,
            conversation_id=self.work["conversation_id"],
            config=self.config,
            flow=flow,
            question=question,
            extracted=extra,
            message_metadata=self.work.get("message_metadata") or {},
            history=self.work["history"],
            language=self.language,
            emit=self.publisher.emit,
            run_db=self.rt.run_db,
            timings=self.timings,
            flow_text=self.calls.flow_text,
        )
        for name, provider in context_providers():
            try:
                await provider(ctx)
            except (UpstreamError, TurnFailed):
                raise
            except Exception:
                # A broken provider must not cost the customer the answer.
                logger.exception("turn %s: context provider %s failed", self.turn_id, name)
            if ctx.final_answer is not None:
                break
        if ctx.metadata:
            self.route.setdefault("context", {}).update(ctx.metadata)
        if ctx.sources:
            # Retrieved before the flow runs (knowledge.context): cited and stored like Flowise's.
            self.sources = ctx.sources
            await self.publisher.emit("source_documents", {"documents": ctx.sources})
        return ctx

    async def _announce(self, label: str | None, extra: dict | None) -> None:
        flow = self.chosen_flow
        self.route.update({"label": label, "flow": flow["name"]})
        data: dict[str, Any] = {
            "flow": flow["name"],
            "route": label,
            "routing_mode": self.route["mode"],
        }
        if extra:
            data["extracted"] = extra
        await self.publisher.emit("metadata", data)

    # --- the whole turn ---------------------------------------------------------------------------

    async def stream_answer(self) -> None:
        rewriter = StreamingRewriter(self.config["text_rules"])
        question = self.work["question"]
        async for event in self.answer_events(question):
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

    def _wall(self, mono: float | None) -> dt.datetime | None:
        if mono is None:
            return None
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - mono)

    async def finish(
        self, status: str, error: TurnFailed | None = None, exc: BaseException | None = None
    ) -> None:
        """End the turn: error event, stored answer, end event. `exc` is what raised, if
        anything: its traceback goes to the listeners (monitoring's error log)."""
        end_at = time.monotonic()
        pub = self.publisher
        self.timings.update(
            {
                "first_token_ms": ms_between(self.t0, pub.first_token_at),
                "streaming_ms": ms_between(pub.first_token_at, end_at)
                if pub.first_token_at
                else None,
                "total_ms": ms_between(self.t0, end_at),
            }
        )
        if error is not None:
            await pub.emit(
                "error",
                {"code": error.code, "message": error.message, "retryable": error.retryable},
            )
        t_persist = time.monotonic()
        text = pub.text()
        message_id = str(uuid.uuid4()) if text else None
        data: dict[str, Any] = {
            "status": status,
            "message_id": message_id,
            "flow": (self.chosen_flow or {}).get("name"),
            "usage": self.usage,
            "timings": self.timings,
        }
        if status == "cancelled":
            data["reason"] = self.rt.cancel_reasons.get(self.turn_id, "cancelled")
        end = await pub.reserve_end(data)
        finished = await self.rt.run_db(
            services.turn_finish,
            turn_id=self.turn_id,
            status=status,
            text=text,
            flow=(self.chosen_flow or {}).get("name", ""),
            route=self.route,
            usage=self.usage,
            timings=self.timings,
            sources=self.sources,
            ai_calls=self.calls.ai_calls,
            end_event=end,
            message_id=message_id,
            error=(
                {"code": error.code, "message": error.message, "category": error.category}
                if error
                else None
            ),
            first_token_at=self._wall(pub.first_token_at),
        )
        self.timings["persistence_ms"] = ms_between(t_persist, time.monotonic())
        if finished is None:
            # Someone else finished this turn (the reaper); its events already ended the stream.
            logger.warning("turn %s was finished elsewhere; not sending a second end", self.turn_id)
        else:
            await pub.announce(end)
            # The time the answer took to store is known only now; keep it with the turn.
            await self.rt.run_db(
                services.turn_timings_update,
                turn_id=self.turn_id,
                timings=self.timings,
                status=status,
                stack="".join(traceback.format_exception(exc)) if exc is not None else "",
            )
        await pub.aclose()


async def turn_run(rt: WorkerRuntime, turn_id: str) -> str:
    """Run one turn to its end. Returns its final status (or 'skipped' if not ours to run)."""
    work = await rt.run_db(services.turn_claim, turn_id=turn_id, worker=rt.name)
    if work is None:
        return "skipped"
    t0 = time.monotonic()
    # All the configuration the turn reads, templates included, in one call on a database
    # thread: on a cold cache it reads PostgreSQL, which the event loop must never do.
    # A staff preview runs against the draft or a chosen version; customers get the live one.
    config = await rt.run_db(
        chatbot_turn_config_get,
        public_id=work["chatbot_public_id"],
        preview=work.get("preview"),
    )
    execution = TurnExecution(rt, work, config)
    execution.t0 = t0
    execution.timings["config_load_ms"] = ms_between(t0, time.monotonic())
    cancel = rt.cancel_event(turn_id)
    heartbeat = asyncio.create_task(_heartbeat(rt, turn_id, cancel))
    try:
        await execution.publisher.emit(
            "start",
            {
                "turn_id": turn_id,
                "conversation_id": work["conversation_id"],
                "user_message_id": work["user_message_id"],
            },
        )
        streaming = asyncio.create_task(execution.stream_answer())
        cancelled = asyncio.create_task(cancel.wait())
        try:
            async with asyncio.timeout(settings.TURN_TOTAL_TIMEOUT):
                await asyncio.wait({streaming, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            streaming.cancel()
            with contextlib.suppress(BaseException):
                await streaming
            await execution.calls.abort_flowise()
            await execution.finish(
                "failed",
                TurnFailed.of("TURN_TIMEOUT", execution.language),
            )
            return "failed"
        finally:
            cancelled.cancel()
        if not streaming.done():
            streaming.cancel()
            with contextlib.suppress(BaseException):
                await streaming
            await execution.calls.abort_flowise()
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
        heartbeat.cancel()
        rt.release(turn_id)


async def _heartbeat(rt: WorkerRuntime, turn_id: str, cancel: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(settings.TURN_HEARTBEAT_SECONDS)
        try:
            still_ours = await rt.run_db(services.turn_heartbeat, turn_id=turn_id)
        except Exception:
            logger.warning("turn %s: heartbeat failed", turn_id, exc_info=True)
            continue
        if not still_ours:
            cancel.set()
            return

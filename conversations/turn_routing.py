"""One turn's routing: which flow answers, what the extractor finds, what the context providers
add, and the answer flow's events.

Part of the turn runner (conversations.runner): `TurnExecution` owns one `TurnRouting`, which
reads and writes the turn's state (route, chosen flow, timings, sources) and calls flows through
the turn's `AICallRecorder`. `answer_events` → `run_answer` → `AICallRecorder.flow_events` is the
per-token path, as it was inside the runner: no layer was added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from aiclients.errors import UpstreamError
from aiclients.types import UpstreamEvent
from chatbots import flow_router
from chatbots.config_types import ChatbotConfig, FlowConfig
from conversations.builtin import builtin_route, split_tokens
from conversations.hooks import TurnContext, context_providers
from conversations.turn_calls import ms_between
from conversations.turn_errors import TurnFailed

if TYPE_CHECKING:
    from conversations.runner import TurnExecution

# The runner's logger: its lines keep the name operators and log filters know them by.
logger = logging.getLogger("conversations.runner")

# The end of the main flow's events held while a parallel router decides.
_DONE = object()


async def turn_context_provide(
    turn: TurnExecution, flow: FlowConfig, question: str, extra: dict[str, Any] | None
) -> TurnContext:
    """Run the context providers (knowledge, orders, images) for one answer flow; what
    they retrieved is cited at once and kept with the turn."""
    ctx = TurnContext(
        turn_id=turn.turn_id,
        conversation_id=turn.work.conversation_id,
        config=turn.config,
        flow=flow,
        question=question,
        extracted=extra,
        message_metadata=turn.work.message_metadata or {},
        history=turn.work.history,
        language=turn.language,
        emit=turn.publisher.emit,
        run_db=turn.rt.run_db,
        timings=turn.timings,
        flow_text=turn.calls.flow_text,
    )
    for name, provider in context_providers():
        try:
            await provider(ctx)
        except (UpstreamError, TurnFailed):
            raise
        except Exception:
            # A broken provider must not cost the customer the answer.
            logger.exception("turn %s: context provider %s failed", turn.turn_id, name)
        if ctx.final_answer is not None:
            break
    if ctx.metadata:
        turn.route.setdefault("context", {}).update(ctx.metadata)
    if ctx.sources:
        # Retrieved before the flow runs (knowledge_context): cited and stored like Flowise's.
        turn.sources = ctx.sources
        await turn.publisher.emit("source_documents", {"documents": ctx.sources})
    return ctx


def _answer_flow(config: ChatbotConfig, label: str | None, main: FlowConfig) -> FlowConfig:
    """The flow the router's label names; answer_flow_for falls back to the main flow, which
    this turn has (answer_events checked), so the fallback here is never taken."""
    return flow_router.answer_flow_for(config, label) or main


class TurnRouting:
    """Chooses the turn's answer flow (sequentially or beside the main flow) and runs it."""

    def __init__(self, turn: TurnExecution) -> None:
        self.turn = turn

    async def decide_label(self, router: FlowConfig, question: str) -> str | None:
        """The router's label; None (the main flow) when the router fails."""
        turn = self.turn
        keys = flow_router.routable_keys(turn.config)
        turn.route["router"] = router["name"]
        try:
            if router["endpoint"]["kind"] == "builtin":
                label = await builtin_route(
                    config=turn.config, question=question, run_db=turn.rt.run_db
                )
            else:
                label = flow_router.parse_label(
                    await turn.calls.flow_text(router, question, purpose="router"), keys
                )
        except UpstreamError as err:
            # A router outage must not cost the customer the answer: fall back to main.
            logger.warning(
                "turn %s: router failed (%s); using the main flow", turn.turn_id, err.code
            )
            turn.route["router_error"] = err.code
            return None
        return label

    async def extract(self, answer: FlowConfig, question: str) -> dict[str, Any] | None:
        """What the answer flow's extractor finds in the question; None if it has none or
        fails (the answer goes on without it)."""
        turn = self.turn
        extractor = flow_router.extractor_for(turn.config, answer)
        if extractor is None or extractor["endpoint"]["kind"] == "builtin":
            return None
        try:
            text = await turn.calls.flow_text(extractor, question, purpose="extractor")
        except UpstreamError as err:
            logger.warning("turn %s: extractor failed (%s)", turn.turn_id, err.code)
            turn.route["extractor_error"] = err.code
            return None
        extracted = flow_router.parse_json_object(text)
        turn.route["extractor"] = extractor["name"]
        return extracted

    async def answer_events(self, question: str) -> AsyncIterator[UpstreamEvent]:
        """The answer's events: main alone, routed first then answered, or in parallel."""
        turn = self.turn
        config = turn.config
        main = flow_router.main_flow(config)
        if main is None:
            raise TurnFailed.of("NO_ANSWER_FLOW", turn.language)
        router = flow_router.router_flow(config)
        t_route = time.monotonic()
        if router is None:
            turn.chosen_flow = main
            extra = await self.extract(main, question)
            turn.timings["routing_ms"] = ms_between(t_route, time.monotonic())
            await self._announce(None, extra)
            async for event in self.run_answer(main, question, extra):
                yield event
            return
        if config["routing_mode"] == "parallel":
            async for event in self._parallel(main, router, question, t_route):
                yield event
            return
        label = await self.decide_label(router, question)
        chosen = _answer_flow(config, label, main)
        turn.chosen_flow = chosen
        extra = await self.extract(chosen, question)
        turn.timings["routing_ms"] = ms_between(t_route, time.monotonic())
        await self._announce(label, extra)
        async for event in self.run_answer(chosen, question, extra):
            yield event

    def _main_held(
        self, main: FlowConfig, question: str, main_ctx: TurnContext
    ) -> tuple[asyncio.Queue, asyncio.Task]:
        """Start the main flow and hold its events (then _DONE, or what it raised) in a queue
        until the router has decided."""
        held: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            try:
                if main_ctx.final_answer is not None:
                    for token in split_tokens(main_ctx.final_answer):
                        await held.put(UpstreamEvent(kind="token", text=token))
                else:
                    async for event in self.turn.calls.flow_events(
                        main, question, purpose="answer", ctx=main_ctx
                    ):
                        await held.put(event)
                await held.put(_DONE)
            except Exception as exc:
                await held.put(exc)

        return held, asyncio.create_task(pump())

    async def _parallel(
        self, main: FlowConfig, router: FlowConfig, question: str, t_route: float
    ) -> AsyncIterator[UpstreamEvent]:
        """Start main while the router decides; hold main's tokens until then."""
        turn = self.turn
        # Providers run for main first (an image description must reach it too).
        main_ctx = await turn_context_provide(self.turn, main, question, None)
        held, main_task = self._main_held(main, question, main_ctx)
        try:
            label = await self.decide_label(router, question)
        except BaseException:
            main_task.cancel()
            raise
        chosen = _answer_flow(turn.config, label, main)
        turn.chosen_flow = chosen
        # Execution statistics (analytics.selectors.execution_statistics): did the main flow
        # started beside the router serve the answer, or was its call wasted?
        turn.route["parallel"] = "released" if chosen["id"] == main["id"] else "aborted"
        if chosen["id"] == main["id"]:
            turn.timings["routing_ms"] = ms_between(t_route, time.monotonic())
            await self._announce(label, None)
            try:
                while True:
                    item = await held.get()
                    if item is _DONE:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                main_task.cancel()
        main_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main_task
        await turn.calls.abort_flowise(only=main)
        extra = await self.extract(chosen, question)
        turn.timings["routing_ms"] = ms_between(t_route, time.monotonic())
        await self._announce(label, extra)
        async for event in self.run_answer(chosen, question, extra):
            yield event

    async def run_answer(
        self, flow: FlowConfig, question: str, extra: dict[str, Any] | None
    ) -> AsyncIterator[UpstreamEvent]:
        """Let the context providers look first, then run the answer flow (or their answer)."""
        ctx = await turn_context_provide(self.turn, flow, question, extra)
        if ctx.final_answer is not None:
            for token in split_tokens(ctx.final_answer):
                yield UpstreamEvent(kind="token", text=token)
            return
        async for event in self.turn.calls.flow_events(
            flow, question, purpose="answer", extra=extra, ctx=ctx
        ):
            yield event

    async def _announce(self, label: str | None, extra: dict[str, Any] | None) -> None:
        """The turn's metadata event: the chosen flow, the route and what was extracted."""
        turn = self.turn
        flow: Mapping[str, Any] = turn.chosen_flow or {}
        turn.route.update({"label": label, "flow": flow["name"]})
        data: dict[str, Any] = {
            "flow": flow["name"],
            "route": label,
            "routing_mode": turn.route["mode"],
        }
        if extra:
            data["extracted"] = extra
        await turn.publisher.emit("metadata", data)

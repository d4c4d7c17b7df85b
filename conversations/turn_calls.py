"""One turn's AI calls: the upstream request of a flow, its events, and its AICall record.

Part of the turn runner (conversations.runner): `TurnExecution` owns one `AICallRecorder`,
which calls flows and endpoints and keeps a record of every call whatever happens, so the
runner's routing and answer streaming never see HTTP, retries or the answer cap.
`AICallRecorder.flow_events` is on the per-token path (stream_answer → flow_events →
stream_flowise): its token loop stays inline, with no extra await or generator layer per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings

from aiclients.errors import UPSTREAM_TOO_LARGE, UpstreamError
from aiclients.flowise import abort_flowise, stream_flowise
from aiclients.openai_compat import stream_openai
from aiclients.types import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamEvent,
    UpstreamRequest,
)
from chatbots.config_types import ChatbotConfig, EndpointConfig, FlowConfig, FlowTemplate
from chatbots.models import TEMPLATE_VARIABLE
from chatbots.secrets import decrypt
from chatbots.services import prompt_bot_values, prompt_render, prompt_values
from conversations import services
from conversations.builtin import builtin_answer_stream
from conversations.hooks import TurnContext, call_observers
from conversations.turn_types import TurnWork
from tools import loop as tool_loop

if TYPE_CHECKING:
    from conversations.runner import TurnExecution

# The runner's logger: its lines keep the name operators and log filters know them by.
logger = logging.getLogger("conversations.runner")


def ms_between(start: float, end: float | None) -> int | None:
    """Milliseconds between two monotonic readings; None while the second has not happened."""
    return None if end is None else round((end - start) * 1000)


# --- the upstream request of one flow call ----------------------------------------------------


def _turn_variables(
    question: str, extra: dict[str, Any] | None, ctx: TurnContext | None
) -> dict[str, Any]:
    """The values a template may place: the question, what the extractor found, the context
    providers' passages and their own variables."""
    return {
        "question": question,
        "extracted": json.dumps(extra, ensure_ascii=False) if extra else "",
        "context": "\n\n".join(ctx.context_parts) if ctx else "",
        **(ctx.variables if ctx else {}),
    }


def _system_prompt(
    template: FlowTemplate | None, config: ChatbotConfig, variables: dict[str, Any]
) -> str | None:
    """The flow's template rendered with the bot's, the flow's and the turn's values."""
    if not template:
        return None
    values = prompt_values(
        defaults=template["defaults"],
        bot=prompt_bot_values(config),
        overrides=template["overrides"],
        turn=variables,
    )
    return prompt_render(text=template["text"], variables=values)


def _override_config(
    flow: FlowConfig,
    system_prompt: str | None,
    extra: dict[str, Any] | None,
    context: str,
    ctx: TurnContext | None,
) -> dict[str, Any]:
    """Flowise's overrideConfig: the flow's Pinecone index and the values its nodes may read."""
    override: dict[str, Any] = {}
    kb = flow.get("knowledge_base")
    if kb and kb["kind"] == "pinecone":
        override["pineconeIndex"] = kb["index_name"]
        if flow.get("namespace"):
            override["pineconeNamespace"] = flow["namespace"]
        override["topK"] = flow["top_k"]
    flow_vars: dict[str, Any] = {}
    if system_prompt:
        flow_vars["prompt"] = system_prompt
    if extra:
        flow_vars.update({k: v for k, v in extra.items() if isinstance(v, str | int | float)})
    if context:
        flow_vars["context"] = context
    if ctx is not None:
        # Values context providers add (e.g. the looked-up order) reach Flowise flows too.
        flow_vars.update(
            {k: v for k, v in ctx.variables.items() if isinstance(v, str | int | float)}
        )
    if flow_vars:
        override["vars"] = flow_vars
    return override


def _extra_context(extra: dict[str, Any] | None, context: str, placed: set[str]) -> str | None:
    """What goes with the question besides the template: what the template does not place
    itself (else the passages would be there twice)."""
    parts = (
        "Extracted from the customer's message: " + json.dumps(extra, ensure_ascii=False)
        if extra and "extracted" not in placed
        else "",
        context if "context" not in placed else "",
    )
    return "\n\n".join(part for part in parts if part) or None


def upstream_request(
    flow: FlowConfig,
    question: str,
    extra: dict[str, Any] | None,
    ctx: TurnContext | None,
    *,
    config: ChatbotConfig,
    work: TurnWork,
) -> UpstreamRequest:
    """The upstream request of one flow call. Pure: the flow's template was resolved with
    the configuration before the turn started (chatbots.selectors.chatbot_turn_config_get),
    so nothing here reads the database or Redis on the event loop."""
    endpoint = flow["endpoint"]
    variables = _turn_variables(question, extra, ctx)
    template = flow.get("template")
    placed = set(TEMPLATE_VARIABLE.findall(template["text"])) if template else set()
    system_prompt = _system_prompt(template, config, variables)
    override = _override_config(flow, system_prompt, extra, variables["context"], ctx)
    history = [
        {"role": m["role"], "content": m["content"]}
        for m in work.history
        if m["role"] in ("user", "assistant")
    ]
    return UpstreamRequest(
        base_url=endpoint["base_url"],
        api_key=decrypt(endpoint["api_key_stored"]),
        target=flow["target"],
        question=question,
        history=history,
        system_prompt=system_prompt,
        session_id=work.conversation_id,
        chat_id=services.new_chat_id(),
        override_config=override,
        extra_context=_extra_context(extra, variables["context"], placed),
    )


def _call_record(flow: FlowConfig, question: str, purpose: str) -> dict[str, Any]:
    """The AICall row of one call as it starts; its outcome is added when it ends."""
    endpoint = flow["endpoint"]
    return {
        "endpoint_kind": endpoint["kind"],
        "endpoint_name": endpoint["name"][:100],
        "flow": flow["name"],
        "purpose": purpose,
        "question": question,
        "model": flow["target"][:200] if endpoint["kind"] != "builtin" else "builtin",
        "status": "ok",
    }


# --- calling flows ----------------------------------------------------------------------------


class AICallRecorder:
    """Calls a turn's flows and records each call (AICall rows, call observers); remembers the
    Flowise predictions it started so they can be stopped when the turn no longer wants them."""

    def __init__(self, turn: TurnExecution) -> None:
        self.turn = turn
        self.ai_calls: list[dict[str, Any]] = []
        self.active_flowise: list[tuple[FlowConfig, str]] = []

    def _events(
        self,
        flow: FlowConfig,
        question: str,
        *,
        purpose: str,
        extra: dict[str, Any] | None,
        ctx: TurnContext | None,
        images: list[dict] | None,
        stats: CallStats,
    ) -> AsyncIterator[UpstreamEvent]:
        """The event stream of one call by the flow's endpoint kind (not started yet)."""
        turn = self.turn
        endpoint = flow["endpoint"]
        if endpoint["kind"] == "builtin":
            return builtin_answer_stream(
                config=turn.config, flow=flow, question=question, run_db=turn.rt.run_db
            )
        req = upstream_request(flow, question, extra, ctx, config=turn.config, work=turn.work)
        if images:
            req.images = images
        timeouts = Timeouts(
            connect=endpoint["connect_timeout"],
            read_idle=endpoint["read_timeout"],
            total=min(endpoint["total_timeout"], settings.TURN_TOTAL_TIMEOUT),
            answer_tail=settings.UPSTREAM_ANSWER_TAIL_SECONDS or None,
        )
        retry = RetryPolicy(max_retries=settings.UPSTREAM_MAX_RETRIES)
        client = turn.rt.client_for(endpoint)
        if endpoint["kind"] == "flowise":
            self.active_flowise.append((flow, req.chat_id))
            return stream_flowise(client, req, timeouts=timeouts, retry=retry, stats=stats)
        if purpose == "answer":
            # With the bot's tools, if it has any: a bounded loop of calls (tools.loop).
            return tool_loop.answer_events(
                turn, client, req, timeouts=timeouts, retry=retry, stats=stats
            )
        return stream_openai(client, req, timeouts=timeouts, retry=retry, stats=stats)

    async def flow_events(
        self,
        flow: FlowConfig,
        question: str,
        *,
        purpose: str,
        extra: dict[str, Any] | None = None,
        ctx: TurnContext | None = None,
        images: list[dict] | None = None,
    ) -> AsyncIterator[UpstreamEvent]:
        """Events of one flow call; records the call in AICall whatever happens."""
        endpoint = flow["endpoint"]
        stats = CallStats()
        started = time.monotonic()
        answer: list[str] = []
        record = _call_record(flow, question, purpose)
        await self._observe("start", endpoint, None)
        try:
            events = self._events(
                flow, question, purpose=purpose, extra=extra, ctx=ctx, images=images, stats=stats
            )
            room, cut = settings.ANSWER_MAX_CHARS, False
            # Every client's stream is an async generator (typed as an iterator): closable.
            async with contextlib.aclosing(cast(AsyncGenerator[UpstreamEvent, None], events)):
                async for event in events:
                    if event.kind == "token":
                        if stats.first_token_at is None:
                            stats.first_token_at = time.monotonic()
                        if len(event.text) > room:
                            # Keep what fits; leaving the block closes the upstream's response.
                            cut = True
                            if room:
                                answer.append(event.text[:room])
                                yield dataclasses.replace(event, text=event.text[:room])
                            break
                        room -= len(event.text)
                        answer.append(event.text)
                    yield event
            if cut:
                await self._answer_too_large(flow)
        except UpstreamError as err:
            record.update(status="error", error_code=err.code[:50])
            raise
        except (asyncio.CancelledError, GeneratorExit):
            record["status"] = "cancelled"
            raise
        finally:
            await self._call_ended(
                record, stats, answer, endpoint=endpoint, started=started, purpose=purpose
            )

    async def _call_ended(
        self,
        record: dict[str, Any],
        stats: CallStats,
        answer: list[str],
        *,
        endpoint: EndpointConfig,
        started: float,
        purpose: str,
    ) -> None:
        """Complete a call's record with what the client measured, keep it for the turn's
        AICall rows and tell the call observers (e.g. monitoring's pool statistics)."""
        finished = time.monotonic()
        record.update(
            answer="".join(answer),
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            total_tokens=stats.total_tokens,
            latency_ms=ms_between(started, finished),
            first_token_ms=ms_between(started, stats.first_token_at),
            attempts=max(1, stats.attempts),
            http_status=stats.status_code,
        )
        if stats.model:
            record["model"] = stats.model[:200]
        timings = self.turn.timings
        if stats.headers_at and "upstream_connect_ms" not in timings and purpose == "answer":
            timings["upstream_connect_ms"] = ms_between(started, stats.headers_at)
        self.ai_calls.append(record)
        await self._observe(
            "end",
            endpoint,
            {**record, "retries": stats.retries, "pool_wait_seconds": stats.pool_wait_seconds},
        )

    async def _answer_too_large(self, flow: FlowConfig) -> None:
        """An answer passed ANSWER_MAX_CHARS: a runaway model (or a hostile endpoint) must not fill
        the worker's memory, the event log and every client's buffers. Flowise is told to stop
        generating; the turn fails with what was streamed so far, stored as incomplete."""
        cap = settings.ANSWER_MAX_CHARS
        logger.warning(
            "turn %s: %s answer of flow %s passed %d characters; stopped",
            self.turn.turn_id,
            flow["endpoint"]["kind"],
            flow["name"],
            cap,
        )
        if flow["endpoint"]["kind"] == "flowise":
            await self.abort_flowise(only=flow)
        raise UpstreamError(
            UPSTREAM_TOO_LARGE,
            f"the answer passed ANSWER_MAX_CHARS ({cap} characters)",
            message=self.turn.text("too_large"),
            retryable=False,
        )

    async def _observe(
        self, phase: str, endpoint: EndpointConfig, record: dict[str, Any] | None
    ) -> None:
        """Tell the call observers; a broken observer must not cost the customer the answer."""
        for observer in call_observers():
            try:
                await observer(phase, endpoint, record)
            except Exception:
                logger.warning("call observer failed", exc_info=True)

    async def flow_text(
        self,
        flow: FlowConfig,
        question: str,
        *,
        purpose: str,
        images: list[dict] | None = None,
    ) -> str:
        """The whole text of one call (routers, extractors, image descriptions)."""
        parts = []
        async for event in self.flow_events(flow, question, purpose=purpose, images=images):
            if event.kind == "token":
                parts.append(event.text)
        return "".join(parts)

    async def abort_flowise(self, only: FlowConfig | None = None) -> None:
        """Stop the Flowise predictions this turn started (or only the given flow's): the
        turn ended or no longer wants their answer, and Flowise would go on generating."""
        for flow, chat_id in list(self.active_flowise):
            if only is not None and flow["id"] != only["id"]:
                continue
            endpoint = flow["endpoint"]
            with contextlib.suppress(Exception):
                await abort_flowise(
                    self.turn.rt.client_for(endpoint),
                    endpoint["base_url"],
                    flow["target"],
                    chat_id,
                    decrypt(endpoint["api_key_stored"]),
                )

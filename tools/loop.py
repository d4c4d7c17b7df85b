"""The tool loop of one answer on an OpenAI-compatible endpoint (ai_protocols.md §7).

The model answers, or asks for tools; the tools on the bot's allow-list run (in parallel, each
with its own timeout and a cap on what it returns) and their results go back to the model, which
is asked again — at most `max_steps` rounds and `max_seconds` in all, after which it is asked to
answer without tools. A tool that fails, times out or is not allowed becomes an error result the
model reads; it never fails the turn. Text the model streams between rounds reaches the customer
as usual, and each round is told to the customer as `tool_call` / `tool_result` events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import httpx

from aiclients.errors import UPSTREAM_EMPTY, UpstreamError
from aiclients.openai_compat import stream_openai
from aiclients.types import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamEvent,
    UpstreamRequest,
)
from chatbots import flow_router
from config.error_log import error_reported
from tools.metrics import tool_calls_count
from tools.registry import Tool, ToolContext, ToolError, ToolResult
from tools.selectors import Toolset, toolset_for_turn

logger = logging.getLogger(__name__)

REDACTED = "***"
TRANSFER = "transfer_to_agent"  # the built-in tool the loop itself carries out (tools.builtin)
ARGUMENT_SHOWN_MAX = 200  # characters of one argument in a tool_call event or a record
ARGUMENTS_SHOWN_MAX = 20  # arguments of one call in a tool_call event or a record
SUMMARY_MAX = 200
GAVE_UP = {
    "da": "Jeg kunne ikke finde svaret denne gang. Prøv igen, eller bed om at tale med en person.",
    "en": "I couldn't find the answer this time. Please try again, or ask to talk to a person.",
}


def _shown(value: Any) -> Any:
    """An argument as events and records keep it: long or nested values are cut short."""
    if isinstance(value, str):
        return value if len(value) <= ARGUMENT_SHOWN_MAX else value[:ARGUMENT_SHOWN_MAX] + "…"
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= ARGUMENT_SHOWN_MAX else text[:ARGUMENT_SHOWN_MAX] + "…"


def redacted_arguments(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    every = "*" in tool.redact
    return {
        str(k)[:100]: (REDACTED if every or k in tool.redact else _shown(v))
        for k, v in list(arguments.items())[:ARGUMENTS_SHOWN_MAX]
    }


def _merge_stats(total: CallStats, step: CallStats) -> None:
    """One AICall record covers the whole loop: attempts and tokens add up over its rounds."""
    total.attempts += step.attempts
    total.retries += step.retries
    total.tokens += step.tokens
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(step, name)
        if value is not None:
            setattr(total, name, (getattr(total, name) or 0) + value)
    for name in ("request_started", "request_started_wall", "headers_at", "first_token_at"):
        if getattr(total, name) is None:
            setattr(total, name, getattr(step, name))
    total.status_code = step.status_code or total.status_code
    total.model = step.model or total.model
    total.finish_reason = step.finish_reason
    total.finished_at = step.finished_at
    total.pool_wait_seconds = step.pool_wait_seconds


def _add_usage(total: dict[str, Any], usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if isinstance(usage.get(key), int):
            total[key] = total.get(key, 0) + usage[key]


class AgentTransfer:
    """The built-in transfer_to_agent, which the loop carries out itself: which of the bot's
    other answer flows this answer may hand over to, the one the model chose, and the hand-over
    (the target flow answers from there on)."""

    def __init__(self, execution: Any, toolset: Toolset) -> None:
        self.execution = execution
        self.toolset = toolset
        self.agents: dict[str, dict] = {}  # routing key -> flow this answer may transfer to
        self.target: dict | None = None

    def _current_flow(self) -> dict | None:
        return self.execution.chosen_flow or flow_router.main_flow(self.execution.config)

    def offer(self) -> None:
        """The bot's other answer flows (by routing key) this answer may hand over to: not the
        current one, nor one that already took part (no ping-pong)."""
        if TRANSFER not in self.toolset.tools:
            self.agents = {}
            return
        current = self._current_flow() or {}
        taken = set(self.execution.route.get("agents") or []) | {current.get("name")}
        self.agents = {
            flow["routing_key"]: flow
            for flow in self.execution.config["flows"]
            if flow["role"] == "answer" and flow.get("routing_key") and flow["name"] not in taken
        }

    def definition(self, tool: Tool) -> dict[str, Any] | None:
        """The tool as the model sees it: its `agent` may only name one of the offered flows."""
        if not self.agents:
            return None  # nobody to hand over to: not offered
        definition = tool.definition()
        definition["function"]["parameters"] = {
            "type": "object",
            "properties": {
                "agent": {
                    "type": "string",
                    "enum": sorted(self.agents),
                    "description": "Who takes over: "
                    + "; ".join(
                        f"{key} ({flow['name']})" for key, flow in sorted(self.agents.items())
                    ),
                }
            },
            "required": ["agent"],
            "additionalProperties": False,
        }
        return definition

    def claim(self, arguments: dict[str, Any]) -> tuple[str, str, str]:
        """The model's choice as a call's outcome, content and summary: one transfer per answer,
        and only to an offered flow."""
        target = self.agents.get(str(arguments.get("agent")))
        if target is None or self.target is not None:
            return "error", json.dumps({"error": "No such agent to transfer to."}), ""
        self.target = target
        return "ok", json.dumps({"transferred_to": target["routing_key"]}), target["name"]

    async def hand_over(self, target: dict, question: str) -> AsyncIterator[UpstreamEvent]:
        """The target flow answers the same question from here on, as the runner runs any
        answer flow (its context providers, its template, its own tool loop)."""
        execution = self.execution
        current = self._current_flow() or {}
        agents = execution.route.setdefault("agents", [current.get("name")])
        agents.append(target["name"])
        execution.chosen_flow = target
        execution.route["flow"] = target["name"]
        async for event in execution.run_answer(target, question, None):
            yield event


class ToolCalls:
    """Runs one round's calls side by side, each within its timeout and with its result capped,
    records every call on the turn, and logs the failed ones."""

    def __init__(
        self,
        execution: Any,
        toolset: Toolset,
        context: ToolContext,
        record: dict[str, Any],
        transfer: AgentTransfer,
    ) -> None:
        self.execution = execution
        self.toolset = toolset
        self.context = context
        self.record = record
        self.transfer = transfer

    async def run_round(self, step: int, planned: list[tuple], deadline: float) -> dict[str, list]:
        """Run the round's calls side by side; the result events and the `tool` messages for
        the model come back in the order the model asked."""
        outcomes = await asyncio.gather(
            *(
                self._run_one(step, call, tool, args, problem, deadline)
                for call, tool, args, problem in planned
            )
        )
        await tool_calls_count(self.execution.rt.redis, self.record["calls"][-len(planned) :])
        events, messages = [], []
        for (call, *_rest), (content, event) in zip(planned, outcomes, strict=True):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
            if event is not None:
                events.append(event)
        return {"events": events, "messages": messages}

    async def _run_one(
        self,
        step: int,
        call: dict[str, str],
        tool: Tool | None,
        arguments: dict[str, Any] | None,
        problem: str | None,
        deadline: float,
    ) -> tuple[str, UpstreamEvent | None]:
        """One call: carried out, recorded, logged if it failed, and told to the customer as a
        `tool_result` (unless the bot has no such tool)."""
        started = time.monotonic()
        name = tool.name if tool is not None else call["name"][:100]
        if problem is not None or tool is None or arguments is None:
            outcome = "refused" if tool is None else "error"
            content, summary = json.dumps({"error": problem}), ""
        elif tool.name == TRANSFER:
            outcome, content, summary = self.transfer.claim(arguments)
        else:
            outcome, content, summary = await self._invoke(
                tool, arguments, name, deadline - started
            )
        duration_ms = round((time.monotonic() - started) * 1000)
        self.record["calls"].append(
            {
                "tool": name,
                "step": step,
                "outcome": outcome,
                "duration_ms": duration_ms,
                "arguments": redacted_arguments(tool, arguments) if tool and arguments else {},
            }
        )
        if outcome != "ok":
            # After the record: the calls of a round stay in the order they were made.
            await self._error_log(name, outcome, content, step)
        if tool is None:
            # Nothing was announced for a tool the bot does not have; the customer hears nothing.
            return content, None
        event = UpstreamEvent(
            "tool_result",
            data={
                "call_id": call["id"],
                "tool": name,
                "ok": outcome == "ok",
                "outcome": outcome,
                "summary": summary[:SUMMARY_MAX],
                "duration_ms": duration_ms,
            },
        )
        return content, event

    async def _invoke(
        self, tool: Tool, arguments: dict[str, Any], name: str, time_left: float
    ) -> tuple[str, str, str]:
        """Run the tool within its timeout (and what is left of the loop's time): its outcome,
        the content the model reads (cut at the toolset's cap) and the customer's summary. A
        tool that fails becomes an error the model hears of, never a failed turn."""
        timeout = max(0.1, min(self.toolset.call_timeout, time_left))
        try:
            async with asyncio.timeout(timeout):
                result = await tool.run(self.context, arguments)
            if isinstance(result, str):
                result = ToolResult(content=result)
            content, cap = result.content, self.toolset.result_max_chars
            if len(content) > cap:
                content = content[:cap] + f"\n[cut: the result had {len(content)} characters]"
            return "ok", content, result.summary
        except TimeoutError:
            error = f"The tool did not answer within {timeout:.0f} s."
            return "timeout", json.dumps({"error": error}), ""
        except ToolError as err:
            return "error", json.dumps({"error": err.message}), ""
        except Exception:
            # A broken tool must not cost the customer the answer: the model hears of it.
            logger.exception("turn %s: tool %s failed", self.context.turn_id, name)
            return "error", json.dumps({"error": "The tool failed."}), ""

    async def _error_log(self, name: str, outcome: str, content: str, step: int) -> None:
        """A failed call goes to the error log (category `tool`): the turn goes on, so nothing
        else would tell the shop. What the model was told is the message; never the arguments."""
        try:
            told = json.loads(content).get("error") or ""
        except (ValueError, AttributeError):
            told = ""
        try:
            await self.execution.rt.run_db(
                error_reported.send,
                sender=Tool,
                category="tool",
                code=f"TOOL_{outcome.upper()}",
                message=f"Tool {name}: {outcome}. {told}"[:1000],
                chatbot_id=self.execution.config["id"],
                turn_id=self.execution.turn_id,
                context={"tool": name, "step": step, "outcome": outcome},
            )
        except Exception:
            logger.warning("turn %s: could not log the failed tool call", self.execution.turn_id)


@dataclass
class _Reply:
    """What one round of the model said: its text, the tool calls it asked for, its figures."""

    text: list[str] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    stats: CallStats = field(default_factory=CallStats)

    def assistant_message(self) -> dict[str, Any]:
        """The model's own turn as the next request repeats it: its text and its calls."""
        return {
            "role": "assistant",
            "content": "".join(self.text) or None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for call in self.calls
            ],
        }


class ToolLoop:
    """One answer's rounds of model and tools (the module's docstring); transfers are
    AgentTransfer's, running the calls is ToolCalls'."""

    def __init__(self, execution: Any, toolset: Toolset) -> None:
        self.execution = execution
        self.toolset = toolset
        work = execution.work
        self.context = ToolContext(
            turn_id=execution.turn_id,
            conversation_id=work.conversation_id,
            config=execution.config,
            language=execution.language,
            question=work.question,
            history=work.history,
            emit=execution.publisher.emit,
            run_db=execution.rt.run_db,
        )
        # What tools note for the turn (e.g. order_lookup's outcome) joins the providers' notes.
        self.context.metadata = execution.route.setdefault("context", {})
        # Kept on the turn's route (and so in agent_info): every call, its timing and outcome.
        self.record: dict[str, Any] = execution.route.setdefault("tools", {"steps": 0, "calls": []})
        self.transfer = AgentTransfer(execution, toolset)
        self.calls = ToolCalls(execution, toolset, self.context, self.record, self.transfer)
        self.text_sent = False  # the customer has read some of the answer

    async def events(
        self,
        client: httpx.AsyncClient,
        req: UpstreamRequest,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        stats: CallStats,
    ) -> AsyncIterator[UpstreamEvent]:
        """Round after round the model's text streams through and the tools it asks for run,
        until it answers without tools, hands the answer to another agent, or the bounds make it
        answer without tools."""
        toolset = self.toolset
        deadline = time.monotonic() + toolset.max_seconds
        self.transfer.offer()
        req.tools = [d for d in map(self._definition, toolset.tools.values()) if d is not None]
        usage: dict[str, Any] = {}
        step = 0
        last_round: list[dict[str, Any]] = []  # records of the calls whose results were just sent
        while True:
            final = step >= toolset.max_steps or time.monotonic() >= deadline
            req.tool_choice = "none" if final else None
            reply = _Reply()
            asked = self._ask(
                client, req, reply, usage, timeouts=timeouts, retry=retry, stats=stats
            )
            async with aclosing(asked):
                async for event in asked:
                    yield event
            for record in last_round:
                # The prompt grew by what the round's results added (tokens after the call).
                record["tokens_after"] = reply.stats.prompt_tokens
            last_round = []
            if not reply.calls:
                break
            if final:
                gave_up = self._stop_at_bound(step)
                if gave_up is not None:
                    yield gave_up
                break
            await self._released()
            step += 1
            self.record["steps"] = self.record.get("steps", 0) + 1
            tool_round = self._tool_round(step, reply, req, deadline)
            async with aclosing(tool_round):
                async for event in tool_round:
                    yield event
            last_round = self.record["calls"][-len(reply.calls) :]
            if self.transfer.target is not None:
                break
        if usage:
            yield UpstreamEvent("usage", data=usage)
        target = self.transfer.target
        if target is not None:
            async for event in self.transfer.hand_over(target, self.context.question):
                yield event

    async def _ask(
        self,
        client: httpx.AsyncClient,
        req: UpstreamRequest,
        reply: _Reply,
        usage: dict[str, Any],
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        stats: CallStats,
    ) -> AsyncIterator[UpstreamEvent]:
        """One streamed call: its text and other events pass through, its tool calls land in
        `reply`, its usage adds up, and its figures join the loop's one AICall record."""
        try:
            async with aclosing(
                stream_openai(client, req, timeouts=timeouts, retry=retry, stats=reply.stats)
            ) as stream:
                async for event in stream:
                    if event.kind == "tool_calls":
                        reply.calls = event.data
                    elif event.kind == "usage":
                        _add_usage(usage, event.data)
                    else:
                        if event.kind == "token":
                            reply.text.append(event.text)
                            self.text_sent = True
                        yield event
        except UpstreamError as err:
            # After a tool round a model may have nothing to add to what it already said.
            if not (err.code == UPSTREAM_EMPTY and self.text_sent):
                raise
        finally:
            _merge_stats(stats, reply.stats)

    def _stop_at_bound(self, step: int) -> UpstreamEvent | None:
        """Asked to answer without tools and it still wants them: the loop stops, and a customer
        who has read nothing yet is told it gave up."""
        logger.info("turn %s: tool loop stopped at its bound", self.execution.turn_id)
        self.record["stopped"] = "max_steps" if step >= self.toolset.max_steps else "time"
        if self.text_sent:
            return None
        return UpstreamEvent("token", text=GAVE_UP[self.execution.language])

    async def _tool_round(
        self, step: int, reply: _Reply, req: UpstreamRequest, deadline: float
    ) -> AsyncIterator[UpstreamEvent]:
        """Announce the round's calls, run them, and add the model's request and their results
        to what the model reads next."""
        planned, announced = self._plan(step, reply.calls)
        for event in announced:
            yield event
        results = await self.calls.run_round(step, planned, deadline)
        for record in self.record["calls"][-len(planned) :]:
            record["tokens_before"] = reply.stats.prompt_tokens
        for event in results["events"]:
            yield event
        req.tool_messages = [*req.tool_messages, reply.assistant_message(), *results["messages"]]

    def _definition(self, tool: Tool) -> dict[str, Any] | None:
        return self.transfer.definition(tool) if tool.name == TRANSFER else tool.definition()

    async def _released(self) -> None:
        """Parallel routing starts the main flow beside the router (runner._parallel) and drops
        it if the router chooses another flow. Tools act on the customer's behalf (a ticket, a
        look-up that counts against their limits), so they wait until this flow is chosen;
        when it is not, this task is cancelled here and no tool has run."""
        route = self.execution.route
        if (
            route.get("mode") != "parallel"
            or flow_router.router_flow(self.execution.config) is None
        ):
            return
        while "parallel" not in route:
            await asyncio.sleep(0.02)

    def _plan(self, step: int, calls: list[dict[str, str]]) -> tuple[list[tuple], list]:
        """Each call with its tool and parsed arguments (or the problem with it), and the
        `tool_call` events announcing the calls of tools the bot has."""
        planned: list[tuple] = []
        events: list[UpstreamEvent] = []
        for call in calls:
            tool = self.toolset.tools.get(call["name"])
            arguments, problem = None, None
            if tool is None:
                problem = f"The tool {call['name'][:100]!r} is not available."
            else:
                try:
                    parsed = json.loads(call["arguments"] or "{}")
                except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                    parsed = None
                if isinstance(parsed, dict):
                    arguments = parsed
                else:
                    problem = "The arguments are not a JSON object."
            planned.append((call, tool, arguments, problem))
            if tool is not None:
                events.append(
                    UpstreamEvent(
                        "tool_call",
                        data={
                            "call_id": call["id"],
                            "tool": tool.name,
                            "label": tool.label_for(self.context.language),
                            "arguments": redacted_arguments(tool, arguments or {}),
                            "step": step,
                        },
                    )
                )
        return planned, events


async def answer_events(
    execution: Any,
    client: httpx.AsyncClient,
    req: UpstreamRequest,
    *,
    timeouts: Timeouts,
    retry: RetryPolicy,
    stats: CallStats,
) -> AsyncIterator[UpstreamEvent]:
    """The answer flow's events on an OpenAI-compatible endpoint: with the bot's tools when it
    has any, else exactly the one streamed call it always was."""
    # A published version carries its own tools (chatbots.versions); the draft reads the row.
    binding = (execution.config["tools"] or {}) if "tools" in execution.config else None
    toolset = await execution.rt.run_db(
        toolset_for_turn, chatbot_id=execution.config["id"], binding=binding
    )
    if toolset is None:
        events = stream_openai(client, req, timeouts=timeouts, retry=retry, stats=stats)
    else:
        events = ToolLoop(execution, toolset).events(
            client, req, timeouts=timeouts, retry=retry, stats=stats
        )
    async with aclosing(events):
        async for event in events:
            yield event


def record_passed_through(route: dict[str, Any], event: UpstreamEvent) -> None:
    """Keep on the turn a tool step an endpoint ran itself (Flowise agents, `source: flowise`),
    like the loop's own calls; the loop records its own as it makes them."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.kind != "tool_result" or data.get("source") != "flowise":
        return
    record = route.setdefault("tools", {"steps": 0, "calls": []})
    record["calls"].append(
        {
            "tool": data.get("tool"),
            "step": 0,
            "outcome": data.get("outcome"),
            "duration_ms": None,
            "arguments": {},
            "source": "flowise",
            **({"agent": data["agent"]} if data.get("agent") else {}),
        }
    )

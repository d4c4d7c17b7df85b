"""Async client for the Flowise prediction API: streams an answer as UpstreamEvents, and aborts runs.

Wire protocol: docs/reference (ai_protocols.md §1). Flowise answers SSE or, when the flow cannot
stream, plain JSON even though streaming was asked for; both become the same events here.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import httpx

from aiclients import errors as E
from aiclients._http import (
    MAX_JSON_BODY,
    AnswerTailElapsed,
    BodyEvents,
    BodyReader,
    Classified,
    QuietTail,
    body_text,
    json_or_none,
    parse_retry_after,
    read_body,
    sse_events,
    status_error,
    stream_call,
)
from aiclients.errors import UpstreamError
from aiclients.sse import DEFAULT_MAX_EVENT_BYTES, SSEEvent
from aiclients.types import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamEvent,
    UpstreamRequest,
    normalise_usage,
)

_ROLES = {"user": "userMessage", "assistant": "apiMessage"}

# The chatflow ids Flowise accepts (the `uuid` package's validate: version 1-8 and the RFC
# variant, or the nil UUID). Flowise answers any other id with 400 "Invalid Chatflow ID" — but
# to a streaming request it sends nothing at all and holds the connection (ai_protocols.md §6),
# so such an id is refused here before anything is sent.
_CHATFLOW_ID_RE = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r"|00000000-0000-0000-0000-000000000000)$",
    re.I,
)


def chatflow_id_accepted(value: str | None) -> bool:
    """Whether Flowise takes this as a chatflow id (see _CHATFLOW_ID_RE)."""
    return bool(value) and _CHATFLOW_ID_RE.match(value) is not None


def _upload_name(name: str, mime: str) -> str:
    # Flowise rejects uploads whose file extension does not match the mime type.
    name = name or "upload"
    expected = mimetypes.guess_all_extensions(mime) or []
    if expected and not any(name.lower().endswith(ext) for ext in expected):
        ext = ".jpg" if ".jpg" in expected else expected[0]
        name += ext
    return name


def build_payload(req: UpstreamRequest, *, streaming: bool = True) -> dict[str, Any]:
    """The JSON body of a prediction request."""
    question = req.question
    if req.extra_context:
        # Flowise has no system-message field on the API; overrides depend on the flow's
        # allow-list, so the context travels with the question.
        question = f"{req.extra_context}\n\n{question}"
    body: dict[str, Any] = {"question": question, "streaming": streaming}
    if req.chat_id:
        body["chatId"] = req.chat_id
    override = dict(req.override_config or {})
    if req.session_id:
        override["sessionId"] = req.session_id
    if override:  # never send "" or {}: Flowise crashes on overrideConfig ""
        body["overrideConfig"] = override
    history = [
        {"role": _ROLES[m["role"]], "content": m.get("content") or ""}
        for m in req.history
        if m.get("role") in _ROLES
    ]
    if history:
        body["history"] = history
    if req.images:
        body["uploads"] = [
            {
                "type": "file",
                "name": _upload_name(img.get("name", ""), img["mime"]),
                "mime": img["mime"],
                "data": f"data:{img['mime']};base64,{img['data_b64']}",
            }
            for img in req.images
        ]
    return body


def _flowise_message(body: bytes) -> str:
    data = json_or_none(body)
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str):
                return data[key]
    return body_text(body)


def _classify(response: httpx.Response, body: bytes, secrets: tuple[str, ...]) -> Classified:
    status = response.status_code
    message = _flowise_message(body)
    detail = f"Flowise HTTP {status}: {message}"
    retry_after = parse_retry_after(response.headers)
    if status == 500 and "Unauthorized" in message:
        # Flowise wraps a wrong per-chatflow key into a 500 (ai_protocols.md §1.8).
        return UpstreamError(E.UPSTREAM_AUTH, detail, status=status, secrets=secrets), False
    if status == 404:
        err = UpstreamError(
            E.UPSTREAM_BAD_REQUEST, detail, status=status, secrets=secrets, category=E.UPSTREAM_AI
        )
        return err, False
    # A Flowise 500 is a flow or configuration error that will fail the same way again.
    return status_error(status, detail, secrets=secrets, retry_after=retry_after)


def _error_event_code(message: str) -> str:
    if "Unauthorized" in message or "401" in message:
        return E.UPSTREAM_AUTH
    if "429" in message or "Rate limit" in message:
        return E.UPSTREAM_RATE_LIMITED
    return E.UPSTREAM_STREAM_ERROR


def stream_flowise(
    client: httpx.AsyncClient,
    req: UpstreamRequest,
    *,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    stats: CallStats | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> AsyncIterator[UpstreamEvent]:
    """Stream one prediction. Raises UpstreamError; retries only before any answer byte was read.

    Close the iterator when done early (`async with contextlib.aclosing(...)`): that closes the
    connection. Closing does not stop the flow on the Flowise side; call `abort_flowise` for that.
    """
    timeouts = timeouts or Timeouts()
    retry = retry or RetryPolicy()
    stats = stats if stats is not None else CallStats()
    secrets = (req.api_key,) if req.api_key else ()
    url = f"{req.base_url.rstrip('/')}/api/v1/prediction/{quote(req.target, safe='')}"
    readers: dict[str, BodyEvents] = {
        "text/event-stream": lambda response, deadline: _sse(
            response, deadline, stats, max_event_bytes, secrets, timeouts
        ),
        "application/json": lambda response, deadline: _json(response, deadline, stats, secrets),
    }
    return stream_call(
        client,
        url=url,
        api_key=req.api_key,
        payload=build_payload(req),
        timeouts=timeouts,
        retry=retry,
        stats=stats,
        classify=lambda resp, body: _classify(resp, body, secrets),
        readers=readers,
        unexpected=" from Flowise",
        refuse=_invalid_chatflow(req.target),
    )


def _invalid_chatflow(target: str) -> UpstreamError | None:
    """The error for a chatflow id Flowise would never answer (it holds a streaming request
    for one without a byte), raised before any request; None for an acceptable id."""
    if chatflow_id_accepted(target):
        return None
    return UpstreamError(
        E.UPSTREAM_BAD_REQUEST,
        f"Invalid Chatflow ID {target[:100]!r}: Flowise would hold a streaming request "
        "for it without any answer",
    )


async def _sse(
    response: httpx.Response,
    deadline: float,
    stats: CallStats,
    max_event_bytes: int,
    secrets: tuple[str, ...],
    timeouts: Timeouts,
) -> AsyncIterator[UpstreamEvent]:
    reader = BodyReader(response, deadline)
    quiet = QuietTail(timeouts.answer_tail)
    try:
        async with aclosing(sse_events(reader, stats, max_event_bytes, quiet=quiet)) as events:
            async for event in _flowise_events(events, reader, stats, secrets):
                yield event
            return
    except AnswerTailElapsed:
        waited = f"{timeouts.answer_tail:g} s"
    except UpstreamError as err:
        # The total limit, reached while only heartbeats came after the answer's tokens: the
        # customer has the answer; keep it rather than fail the turn.
        if not (err.code == E.UPSTREAM_TIMEOUT and stats.tokens and quiet.heartbeats_since_event):
            raise
        waited = "the total time limit"
    # The rule for an answer whose end never comes (docs/streaming.md): every token the
    # server sent is kept, the call completes, and the warning is recorded on the turn.
    yield UpstreamEvent(
        "warning",
        data={
            "code": "UPSTREAM_END_MISSING",
            "detail": f"Flowise sent the answer, then only heartbeats for {waited}; the answer "
            "was kept as streamed, without the metadata and end that never came",
        },
    )


async def _flowise_events(
    events: AsyncIterator[SSEEvent],
    reader: BodyReader,
    stats: CallStats,
    secrets: tuple[str, ...],
) -> AsyncIterator[UpstreamEvent]:
    """The answer's events from Flowise's SSE frames (ai_protocols.md §2)."""
    async for sse in events:
        try:
            payload = json.loads(sse.data)
            name = payload["event"]
        except (ValueError, TypeError, KeyError):
            raise UpstreamError(
                E.UPSTREAM_BAD_RESPONSE,
                f"malformed Flowise frame: {sse.data[:200]!r}",
                tokens_emitted=stats.tokens,
                secrets=secrets,
            ) from None
        data = payload.get("data")
        if name == "token":
            if isinstance(data, str) and data:
                stats.mark_token()
                yield UpstreamEvent("token", text=data)
        elif name == "start":
            continue  # repeats the first token, which also arrives as `token`
        elif name == "sourceDocuments":
            yield UpstreamEvent("source_documents", data=data)
        elif name == "metadata":
            yield UpstreamEvent("metadata", data=data)
        elif name == "usageMetadata" and isinstance(data, dict):
            yield _usage_event(data, stats)
        elif name in TOOL_EVENTS:
            for event in flowise_tool_steps(name, data):
                yield event
        elif name == "error":
            message = data if isinstance(data, str) else json.dumps(data)
            raise UpstreamError(
                _error_event_code(message),
                f"Flowise error event: {message}",
                tokens_emitted=stats.tokens,
                secrets=secrets,
            )
        elif name in ("abort", "tts_abort"):
            raise UpstreamError(
                E.UPSTREAM_ABORTED, "Flowise aborted the run", tokens_emitted=stats.tokens
            )
        elif name == "end":
            await reader.drain()
            if stats.tokens == 0:
                # Known Flowise bug: only metadata + end arrive (ai_protocols.md §2).
                raise UpstreamError(E.UPSTREAM_EMPTY, "stream ended without any token")
            return
        # Other events (thinking, agent traces, tts) are not part of the answer text.
    raise UpstreamError(
        E.UPSTREAM_TRUNCATED, "stream ended without an end event", tokens_emitted=stats.tokens
    )


# Flowise agents run their own tools; what they report is passed on as our tool_call /
# tool_result events (docs/tools.md), never their inputs or outputs (personal data, secrets).
TOOL_EVENTS = ("usedTools", "calledTools", "agentReasoning")
MAX_TOOL_STEPS = 50


def flowise_tool_steps(name: str, data: Any) -> list[UpstreamEvent]:
    """`usedTools` / `calledTools` items ({tool, toolInput, toolOutput, error?}) and the
    `usedTools` of `agentReasoning` items ({agentName, usedTools?}), as tool_call + tool_result
    pairs marked `source: flowise`."""
    items: list[tuple[dict, str | None]] = []
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict):
            continue
        if name == "agentReasoning":
            agent = entry.get("agentName") or entry.get("nodeName")
            items += [(t, agent) for t in entry.get("usedTools") or [] if isinstance(t, dict)]
        else:
            items.append((entry, None))
    events: list[UpstreamEvent] = []
    for n, (item, agent) in enumerate(items[:MAX_TOOL_STEPS], start=1):
        tool = item.get("tool") or item.get("name") or item.get("toolName")
        if not isinstance(tool, str) or not tool:
            continue
        tool = tool[:100]
        base = {"call_id": f"flowise-{name}-{n}", "tool": tool, "source": "flowise"}
        if isinstance(agent, str) and agent:
            base["agent"] = agent[:100]
        failed = bool(item.get("error"))
        events.append(
            UpstreamEvent("tool_call", data={**base, "label": tool, "arguments": {}, "step": 0})
        )
        events.append(
            UpstreamEvent(
                "tool_result",
                data={
                    **base,
                    "ok": not failed,
                    "outcome": "error" if failed else "ok",
                    "summary": "",
                    "duration_ms": None,
                },
            )
        )
    return events


def _usage_event(data: dict[str, Any], stats: CallStats) -> UpstreamEvent:
    usage = normalise_usage(data)
    stats.prompt_tokens = usage.get("prompt_tokens")
    stats.completion_tokens = usage.get("completion_tokens")
    stats.total_tokens = usage.get("total_tokens")
    return UpstreamEvent("usage", data=usage)


async def _json(
    response: httpx.Response, deadline: float, stats: CallStats, secrets: tuple[str, ...]
) -> AsyncIterator[UpstreamEvent]:
    body = await read_body(response, deadline, MAX_JSON_BODY)
    data = json_or_none(body)
    if not isinstance(data, dict):
        raise UpstreamError(
            E.UPSTREAM_BAD_RESPONSE, f"unreadable Flowise JSON: {body_text(body, 200)!r}"
        )
    text = data.get("text")
    if text is None and data.get("json") is not None:
        text = json.dumps(data["json"], ensure_ascii=False)
    if not isinstance(text, str) or not text:
        raise UpstreamError(E.UPSTREAM_EMPTY, "Flowise JSON answer without text")
    stats.mark_token()
    yield UpstreamEvent("token", text=text)
    if data.get("sourceDocuments"):
        yield UpstreamEvent("source_documents", data=data["sourceDocuments"])
    for name in TOOL_EVENTS:
        for event in flowise_tool_steps(name, data.get(name)):
            yield event
    meta = {k: data[k] for k in ("chatId", "chatMessageId", "question", "sessionId") if k in data}
    if "memoryType" in data:
        meta["memoryType"] = data["memoryType"]
    yield UpstreamEvent("metadata", data=meta)


async def abort_flowise(
    client: httpx.AsyncClient,
    base_url: str,
    chatflow_id: str,
    chat_id: str,
    api_key: str = "",
    *,
    timeout: float = 5.0,
) -> bool:
    """Ask Flowise to stop a run; True when it acknowledged. Never raises for HTTP problems.

    Only agent flows really stop; a plain chatflow finishes and is saved anyway (§1.12).
    """
    url = (
        f"{base_url.rstrip('/')}/api/v1/chatmessage/abort/"
        f"{quote(chatflow_id, safe='')}/{quote(chat_id, safe='')}"
    )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await client.put(url, headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200

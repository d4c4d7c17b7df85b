"""Async streaming client for OpenAI-compatible Chat Completions servers (OpenAI, vLLM, Ollama...).

Wire protocol: ai_protocols.md §3. `base_url` includes the version prefix, e.g. https://api.openai.com/v1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx

from aiclients import errors as E
from aiclients._http import (
    MAX_JSON_BODY,
    BodyEvents,
    BodyReader,
    Classified,
    body_text,
    json_or_none,
    parse_retry_after,
    read_body,
    sse_events,
    status_error,
    stream_call,
)
from aiclients.errors import UpstreamError
from aiclients.sse import DEFAULT_MAX_EVENT_BYTES
from aiclients.types import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamEvent,
    UpstreamRequest,
    normalise_usage,
)

# OpenAI says 500s are worth retrying; the Flowise client does not retry them.
RETRY_STATUSES = frozenset({500, 502, 503, 504})


def build_messages(req: UpstreamRequest) -> list[dict[str, Any]]:
    """System prompt (with extra context), history, then the user turn with any images."""
    system = "\n\n".join(p for p in (req.system_prompt, req.extra_context) if p)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages += [
        {"role": m["role"], "content": m.get("content") or ""}
        for m in req.history
        if m.get("role") in ("user", "assistant")
    ]
    if req.images:
        content: Any = [{"type": "text", "text": req.question}]
        content += [
            {
                "type": "image_url",
                "image_url": {
                    "url": f"data:{img['mime']};base64,{img['data_b64']}",
                    "detail": "auto",
                },
            }
            for img in req.images
        ]
    else:
        content = req.question
    messages.append({"role": "user", "content": content})
    messages += req.tool_messages
    return messages


def build_payload(req: UpstreamRequest, *, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"model": req.target, "messages": build_messages(req), "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if req.tools:
        body["tools"] = req.tools
        if req.tool_choice:
            body["tool_choice"] = req.tool_choice
    return body


class ToolCallAssembler:
    """Streamed `delta.tool_calls` fragments put back together by `index` (ai_protocols.md §7).

    Lenient like the reference asks: a server may send whole arguments in one fragment, omit
    `type` or `id` after the first, or start at any index; calls come out in index order."""

    MAX_CALLS = 32  # a model asking for more in one step is broken or hostile
    MAX_ARGUMENT_CHARS = 64 * 1024  # per call; past it the arguments are cut (so: not JSON)

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, fragments: Any) -> None:
        if not isinstance(fragments, list):
            return
        for frag in fragments:
            if not isinstance(frag, dict):
                continue
            index = frag.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool):
                continue
            if index not in self.calls:
                if len(self.calls) >= self.MAX_CALLS:
                    continue
                self.calls[index] = {"id": "", "name": "", "arguments": [], "size": 0}
            call = self.calls[index]
            if isinstance(frag.get("id"), str) and frag["id"]:
                call["id"] = frag["id"]
            function = frag.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str) and function["name"]:
                    call["name"] = function["name"]
                piece = function.get("arguments")
                if isinstance(piece, str) and call["size"] < self.MAX_ARGUMENT_CHARS:
                    piece = piece[: self.MAX_ARGUMENT_CHARS - call["size"]]
                    call["arguments"].append(piece)
                    call["size"] += len(piece)

    def result(self) -> list[dict[str, str]]:
        out = []
        for index in sorted(self.calls):
            call = self.calls[index]
            if not call["name"]:
                continue
            out.append(
                {
                    # Some compatible servers send no id; the loop needs one to answer the call.
                    "id": call["id"] or f"call_{index}",
                    "name": call["name"],
                    "arguments": "".join(call["arguments"]),
                }
            )
        return out


def _classify(response: httpx.Response, body: bytes, secrets: tuple[str, ...]) -> Classified:
    status = response.status_code
    data = json_or_none(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or ""
        message = str(error.get("message") or "")
    else:
        code, message = "", (error if isinstance(error, str) else body_text(body))
    detail = f"HTTP {status} {code}: {message}".strip()
    retry_after = parse_retry_after(response.headers)
    kw: dict[str, Any] = {"status": status, "secrets": secrets, "retry_after": retry_after}
    if status == 429 and code == "insufficient_quota":
        # Billing, not load: waiting will not help, so neither the client nor the user retries.
        return UpstreamError(E.UPSTREAM_RATE_LIMITED, detail, retryable=False, **kw), False
    if code == "context_length_exceeded":
        return UpstreamError(E.UPSTREAM_TOO_LARGE, detail, **kw), False
    err, may_retry = status_error(
        status, detail, secrets=secrets, retry_after=retry_after, retry_statuses=RETRY_STATUSES
    )
    if status == 409:
        may_retry = True
    should_retry = response.headers.get("x-should-retry")
    if should_retry == "true" and status not in (400, 401, 403, 404, 413, 422):
        may_retry = True
    elif should_retry == "false":
        may_retry = False
    return err, may_retry


def stream_openai(
    client: httpx.AsyncClient,
    req: UpstreamRequest,
    *,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    stats: CallStats | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> AsyncIterator[UpstreamEvent]:
    """Stream one chat completion as token and usage events. Raises UpstreamError.

    Retries happen only before the first answer byte. Close the iterator to drop the connection.
    """
    timeouts = timeouts or Timeouts()
    retry = retry or RetryPolicy()
    stats = stats if stats is not None else CallStats()
    secrets = (req.api_key,) if req.api_key else ()
    readers: dict[str, BodyEvents] = {
        "text/event-stream": lambda response, deadline: _sse(
            response, deadline, stats, max_event_bytes, secrets
        ),
        # Some compatible servers ignore `stream` and answer in one piece.
        "application/json": lambda response, deadline: _json(response, deadline, stats, secrets),
    }
    return stream_call(
        client,
        url=f"{req.base_url.rstrip('/')}/chat/completions",
        api_key=req.api_key,
        payload=build_payload(req),
        timeouts=timeouts,
        retry=retry,
        stats=stats,
        classify=lambda resp, body: _classify(resp, body, secrets),
        readers=readers,
    )


def _usage(raw: dict[str, Any], stats: CallStats) -> UpstreamEvent:
    usage = normalise_usage(raw)  # servers differ: nulls, extra keys, input_/output_tokens
    stats.prompt_tokens = usage.get("prompt_tokens")
    stats.completion_tokens = usage.get("completion_tokens")
    stats.total_tokens = usage.get("total_tokens")
    return UpstreamEvent("usage", data=usage)


def _stream_error(error: Any, stats: CallStats, secrets: tuple[str, ...]) -> UpstreamError:
    if isinstance(error, dict):
        detail = f"error frame {error.get('type') or ''}/{error.get('code') or ''}: {error.get('message')}"
    else:
        detail = f"error frame: {error}"
    return UpstreamError(
        E.UPSTREAM_STREAM_ERROR, detail, tokens_emitted=stats.tokens, secrets=secrets
    )


async def _sse(
    response: httpx.Response,
    deadline: float,
    stats: CallStats,
    max_event_bytes: int,
    secrets: tuple[str, ...],
) -> AsyncIterator[UpstreamEvent]:
    reader = BodyReader(response, deadline)
    tool_calls = ToolCallAssembler()
    async with aclosing(sse_events(reader, stats, max_event_bytes)) as events:
        async for sse in events:
            data = sse.data
            if data.startswith("[DONE]"):
                await reader.drain()
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                chunk = None
            if not isinstance(chunk, dict):
                raise UpstreamError(
                    E.UPSTREAM_BAD_RESPONSE,
                    f"malformed chunk: {data[:200]!r}",
                    tokens_emitted=stats.tokens,
                    secrets=secrets,
                )
            if chunk.get("error") is not None:
                raise _stream_error(chunk["error"], stats, secrets)
            if chunk.get("model"):
                stats.model = chunk["model"]
            # The usage chunk has `choices: []`; never index choices blindly.
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                text = delta.get("content") or delta.get("refusal")
                if isinstance(text, str) and text:
                    stats.mark_token()
                    yield UpstreamEvent("token", text=text)
                tool_calls.feed(delta.get("tool_calls"))
                if choice.get("finish_reason"):
                    stats.finish_reason = choice["finish_reason"]
            if isinstance(chunk.get("usage"), dict):
                yield _usage(chunk["usage"], stats)
        else:
            # EOF without [DONE]: complete only if the model had already finished.
            if stats.finish_reason is None:
                raise UpstreamError(
                    E.UPSTREAM_TRUNCATED,
                    "stream ended without [DONE]",
                    tokens_emitted=stats.tokens,
                )
    calls = tool_calls.result()
    if calls:
        yield UpstreamEvent("tool_calls", data=calls)
    elif stats.tokens == 0:
        raise UpstreamError(E.UPSTREAM_EMPTY, f"no content (finish_reason={stats.finish_reason!r})")


async def _json(
    response: httpx.Response, deadline: float, stats: CallStats, secrets: tuple[str, ...]
) -> AsyncIterator[UpstreamEvent]:
    body = await read_body(response, deadline, MAX_JSON_BODY)
    data = json_or_none(body)
    if not isinstance(data, dict):
        raise UpstreamError(E.UPSTREAM_BAD_RESPONSE, f"unreadable JSON: {body_text(body, 200)!r}")
    if data.get("error") is not None:
        raise _stream_error(data["error"], stats, secrets)
    stats.model = data.get("model") or stats.model
    choices = data.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    text = message.get("content") or message.get("refusal")
    if choices:
        stats.finish_reason = choices[0].get("finish_reason")
    tool_calls = ToolCallAssembler()
    raw_calls = message.get("tool_calls")
    if isinstance(raw_calls, list):
        tool_calls.feed([{"index": i, **c} for i, c in enumerate(raw_calls) if isinstance(c, dict)])
    calls = tool_calls.result()
    if (not isinstance(text, str) or not text) and not calls:
        raise UpstreamError(E.UPSTREAM_EMPTY, "completion without content")
    if isinstance(text, str) and text:
        stats.mark_token()
        yield UpstreamEvent("token", text=text)
    if calls:
        yield UpstreamEvent("tool_calls", data=calls)
    if isinstance(data.get("usage"), dict):
        yield _usage(data["usage"], stats)

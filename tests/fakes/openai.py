"""Fake OpenAI-compatible Chat Completions API (streaming and not) with rate-limit headers and faults.

Run standalone: `python -m tests.fakes.openai --port 8102` (base URL for clients: http://host:port/v1).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any, NamedTuple

from tests.fakes._server import (
    COMMON_DEFAULTS,
    FakeServer,
    Request,
    Responder,
    Scenario,
    decode_data_url,
    describe_image,
)

OPENAI_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "models": ["gpt-4o-mini"],
    "strict_models": False,  # when true, unknown models get 404 model_not_found
    "error_code": None,  # e.g. "insufficient_quota" with status 429
    "retry_after_ms": None,
    "x_should_retry": None,
    "finish_reason": "stop",
    "omit_usage": False,  # never send the usage chunk, even when asked for
    "json_fallback": False,  # answer stream requests with one chat.completion JSON, like some servers
    # Tool calling (ai_protocols.md §7). `script`: one step per request that offers `tools`, in
    # order: {"content": "text before the calls", "tool_calls": [{"name", "arguments": dict|str,
    # "id"?}], "answer": "text instead of calls"}. Once used up, requests get the default answer
    # (which echoes the tool results it was sent), or the last step again with `script_repeat`.
    "script": None,
    "script_repeat": False,
    "arguments_chunk": 7,  # characters of `arguments` per fragment, like the real API's splitting
    "interleave_calls": False,  # parallel calls' fragments alternate by index
}

SSE_HEADERS = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def mask_key(key: str) -> str:
    # OpenAI echoes a masked form of the key it rejected; clients must not log even that.
    return f"{key[:8]}{'*' * 10}{key[-4:]}" if len(key) > 12 else "***"


def message_text(content: Any) -> tuple[str, list[bytes]]:
    """Text and decoded images of one message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[bytes] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            data = decode_data_url((part.get("image_url") or {}).get("url", ""))
            if data is not None:
                images.append(data)
    return " ".join(texts), images


def default_answer(body: dict[str, Any]) -> str:
    """`You asked: <last user text>` plus one `[Image <hash>]` per image in that message; after
    tool results, `From the tools: <their contents>`, so a test can see what the model was told."""
    messages = body.get("messages") or []
    results: list[str] = []
    for msg in reversed(messages):
        if not isinstance(msg, dict) or msg.get("role") != "tool":
            break
        results.insert(0, str(msg.get("content") or ""))
    if results:
        return "From the tools: " + " | ".join(results)
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            text, images = message_text(msg.get("content"))
            return f"You asked: {text}" + "".join(f" [{describe_image(d)}]" for d in images)
    return "You asked: "


def count_prompt_tokens(body: dict[str, Any]) -> int:
    n = 0
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            n += 4 + len(message_text(msg.get("content"))[0].split())
    return n


def tool_messages_error(messages: list) -> str | None:
    """What the real API says (400) about a `tool` message that answers no earlier tool call."""
    open_ids: set[str] = set()
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if msg.get("role") == "assistant":
            open_ids = {
                str(call.get("id"))
                for call in msg.get("tool_calls") or []
                if isinstance(call, dict)
            }
        elif msg.get("role") == "tool" and msg.get("tool_call_id") not in open_ids:
            return (
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'."
            )
    return None


def _split(text: str, size: int) -> list[str]:
    size = max(1, int(size or 1))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class Reply(NamedTuple):
    """One completion's content, the same whether it is streamed or sent whole."""

    key: int  # the request's index, under which its tokens are emitted
    cid: str
    model: str
    tokens: list[str]
    usage: dict[str, int]
    calls: list[dict[str, Any]]


class FakeOpenAI(FakeServer):
    name = "fake-openai"
    DEFAULTS = OPENAI_DEFAULTS
    fault_knobs = FakeServer.fault_knobs | {"error_code", "retry_after_ms", "x_should_retry"}

    def _on_reset(self) -> None:
        self._script_used = 0

    def configure(self, **knobs: Any) -> FakeOpenAI:
        if "script" in knobs:
            self._script_used = 0  # a new script starts at its first step
        return super().configure(**knobs)

    def _script_step(self, sc: Scenario, body: dict[str, Any]) -> dict[str, Any] | None:
        """The scripted step for this request, if it offers tools the model may call."""
        script = sc.get("script")
        if not script or not body.get("tools") or body.get("tool_choice") == "none":
            return None
        with self._lock:
            used = getattr(self, "_script_used", 0)
            if used >= len(script) and not sc.get("script_repeat"):
                return None
            self._script_used = used + 1
        step = script[min(used, len(script) - 1)]
        return step if isinstance(step, dict) else None

    @staticmethod
    def _tool_calls(step: dict[str, Any], request_index: int) -> list[dict[str, Any]]:
        calls = []
        for i, call in enumerate(step.get("tool_calls") or []):
            args = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id") or f"call_{request_index}_{i}_{secrets.token_hex(4)}",
                    "name": str(call["name"]),
                    "arguments": args if isinstance(args, str) else _dumps(args),
                }
            )
        return calls

    def _headers(self, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        return [
            ("x-request-id", f"req_{secrets.token_hex(8)}"),
            ("openai-processing-ms", "12"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-limit-tokens", "2000000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-remaining-tokens", "1999000"),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-reset-tokens", "30ms"),
            *(extra or []),
        ]

    def _auth_error(self, req: Request, sc: Scenario) -> dict | None:
        if not sc.api_key:
            return None
        header = req.headers.get("authorization", "")
        if header == f"Bearer {sc.api_key}":
            return None
        if not header:
            return error_body(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        given = header.removeprefix("Bearer ").strip()
        return error_body(
            f"Incorrect API key provided: {mask_key(given)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )

    async def handle(self, req: Request, resp: Responder) -> None:
        path = req.path.rstrip("/")
        if path == "/v1/chat/completions" and req.method == "POST":
            await self._completions(req, resp)
        elif path == "/v1/embeddings" and req.method == "POST":
            await self._embeddings(req, resp)
        elif path == "/v1/models" and req.method == "GET":
            sc = self.scenario
            if err := self._auth_error(req, sc):
                await resp.send(401, err, headers=self._headers())
                return
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"}
                for m in sc.models
            ]
            await resp.send(200, {"object": "list", "data": data}, headers=self._headers())
        else:
            msg = f"Invalid URL ({req.method} {req.path})"
            await resp.send(
                404, error_body(msg, "invalid_request_error", None), headers=self._headers()
            )

    async def _embeddings(self, req: Request, resp: Responder) -> None:
        """POST /v1/embeddings: deterministic vectors (tests/fakes/embeddings.py), one per input."""
        from tests.fakes.embeddings import DEFAULT_DIMENSIONS, embed_text

        sc = self.take_scenario()
        if err := self._auth_error(req, sc):
            await resp.send(401, err, headers=self._headers())
            return
        if sc.status:
            msg = sc.error_message or "Simulated failure."
            await resp.send(int(sc.status), error_body(msg, "server_error", None))
            return
        body = req.json if isinstance(req.json, dict) else {}
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not body.get("model") or not isinstance(inputs, list) or not inputs:
            msg = "'input' and 'model' are required."
            await resp.send(400, error_body(msg, "invalid_request_error", None))
            return
        dims = body.get("dimensions") or DEFAULT_DIMENSIONS
        data = [
            {"object": "embedding", "index": i, "embedding": embed_text(str(text), dims)}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(text).split()) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        await resp.send(200, payload, headers=self._headers())

    async def _error_status(self, resp: Responder, sc: Scenario, status: int, model: str) -> None:
        extra: list[tuple[str, str]] = []
        if sc.retry_after is not None:
            extra.append(("retry-after", str(sc.retry_after)))
        if sc.retry_after_ms is not None:
            extra.append(("retry-after-ms", str(sc.retry_after_ms)))
        if sc.x_should_retry is not None:
            extra.append(("x-should-retry", "true" if sc.x_should_retry else "false"))
        msg = sc.error_message
        if status == 429 and sc.error_code == "insufficient_quota":
            body = error_body(
                msg
                or "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        elif status == 429:
            body = error_body(
                msg
                or f"Rate limit reached for {model} in organization org-fake on tokens per min "
                "(TPM): Limit 10000, Used 9524, Requested 497. Please try again in 125ms.",
                "tokens",
                "rate_limit_exceeded",
            )
        elif status == 401:
            body = error_body(
                msg or "Incorrect API key provided: sk-fake**********abcd.",
                "invalid_request_error",
                "invalid_api_key",
            )
        elif status == 403:
            body = error_body(
                msg or "Country, region, or territory not supported",
                "request_forbidden",
                "unsupported_country_region_territory",
            )
        elif status == 404:
            body = error_body(
                msg or f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        elif status == 503:
            body = error_body(
                msg or "The engine is currently overloaded, please try again later",
                "server_error",
                None,
            )
        elif status >= 500:
            body = error_body(
                msg or "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            )
        else:
            body = error_body(
                msg or "Invalid request.", "invalid_request_error", sc.error_code, "messages"
            )
        await resp.send(status, body, headers=self._headers(extra))

    async def _completions(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        body = req.json if isinstance(req.json, dict) else None
        if await self.before_headers(sc, resp):
            return
        if err := self._auth_error(req, sc):
            await resp.send(401, err, headers=self._headers())
            return
        model = str((body or {}).get("model", ""))
        if sc.status:
            await self._error_status(resp, sc, int(sc.status), model)
            return
        if body is None:
            msg = "We could not parse the JSON body of your request."
            await resp.send(
                400, error_body(msg, "invalid_request_error", None), headers=self._headers()
            )
            return
        if not model or not isinstance(body.get("messages"), list) or not body["messages"]:
            param = "model" if not model else "messages"
            msg = f"Missing required parameter: '{param}'."
            await resp.send(
                400,
                error_body(msg, "invalid_request_error", "missing_required_parameter", param),
                headers=self._headers(),
            )
            return
        if sc.strict_models and model not in sc.models:
            await self._error_status(resp, Scenario(sc, error_message=None), 404, model)
            return
        if msg := tool_messages_error(body["messages"]):
            await resp.send(
                400,
                error_body(msg, "invalid_request_error", None, "messages"),
                headers=self._headers(),
            )
            return

        step = self._script_step(sc, body)
        calls: list[dict[str, Any]] = []
        if step is not None:
            calls = self._tool_calls(step, req.index)
            text = (step.get("content") if calls else step.get("answer")) or ""
            tokens = self.answer_tokens(Scenario(sc, tokens=None, answer=text), "") if text else []
            if calls:
                sc = Scenario(sc, finish_reason="tool_calls")
        else:
            tokens = [] if sc.empty_answer else self.answer_tokens(sc, default_answer(body))
        usage = {
            "prompt_tokens": count_prompt_tokens(body),
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        reply = Reply(req.index, f"chatcmpl-fake{req.index}", model, tokens, usage, calls)
        if body.get("stream") is True and not sc.json_fallback:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            include_usage = include_usage and not sc.omit_usage
            await self._stream(resp, sc, reply, include_usage)
        else:
            await self._complete(resp, sc, reply)

    async def _complete(self, resp: Responder, sc: Scenario, reply: Reply) -> None:
        key, cid, model, tokens, usage, calls = reply
        if sc.error_after_tokens is not None:
            await self._error_status(resp, sc, 500, model)
            return
        if await self.wait_whole_answer(sc, resp, len(tokens)):
            return
        for i in range(len(tokens)):
            self.emit(key, i)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(tokens) or (None if calls else ""),
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
        out = {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": sc.finish_reason,
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        await resp.send(200, out, headers=self._headers())

    async def _stream(
        self, resp: Responder, sc: Scenario, reply: Reply, include_usage: bool
    ) -> None:
        key, cid, model, tokens, usage, calls = reply
        await resp.start(200, SSE_HEADERS + self._headers())
        beat = self.heartbeat(resp, sc.heartbeat_interval, b": keep-alive\n\n")
        created = int(time.time())
        # Everything but the choices is the same for every chunk: format the JSON once.
        prefix = f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{created},'
        prefix += f'"model":{_dumps(model)},"system_fingerprint":"fp_fake","choices":'
        null_usage = ',"usage":null}\n\n' if include_usage else "}\n\n"

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return (prefix + "[" + _dumps(choice) + "]" + null_usage).encode()

        try:
            if sc.delay_before_first_token:
                await asyncio.sleep(sc.delay_before_first_token)
            await resp.write(chunk({"role": "assistant", "content": "", "refusal": None}))
            frames = [chunk({"content": t}) for t in tokens]
            if not await self.run_tokens(
                resp, sc, key, frames, lambda i: self._interrupt(resp, sc, i)
            ):
                return
            for frame in self._tool_call_frames(sc, calls):
                await resp.write(chunk({"tool_calls": [frame]}))
            if sc.no_end:
                await resp.wait_peer_closed()
                return
            await resp.write(chunk({}, sc.finish_reason))
            if include_usage:
                full = {
                    **usage,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                }
                await resp.write((prefix + '[],"usage":' + _dumps(full) + "}\n\n").encode())
            await resp.write(b"data: [DONE]\n\n")
            await resp.finish()
        finally:
            if beat is not None:
                beat.cancel()

    @staticmethod
    def _tool_call_frames(sc: Scenario, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`delta.tool_calls` fragments as OpenAI streams them: the first of each call carries
        id, type and name with empty arguments; the rest carry pieces of the arguments only."""
        per_call: list[list[dict[str, Any]]] = []
        for index, call in enumerate(calls):
            frames: list[dict[str, Any]] = [
                {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": ""},
                }
            ]
            frames += [
                {"index": index, "function": {"arguments": piece}}
                for piece in _split(call["arguments"], sc.get("arguments_chunk") or 7)
            ]
            per_call.append(frames)
        if not sc.get("interleave_calls"):
            return [frame for frames in per_call for frame in frames]
        out: list[dict[str, Any]] = []
        for i in range(max((len(f) for f in per_call), default=0)):
            out += [frames[i] for frames in per_call if i < len(frames)]
        return out

    async def _interrupt(self, resp: Responder, sc: Scenario, i: int) -> bool:
        if sc.error_after_tokens == i:
            err = error_body(
                sc.error_message or "The server had an error while processing your request.",
                "server_error",
                None,
            )
            await resp.write(f"data: {_dumps(err)}\n\n".encode())
            await resp.finish()
            resp.abort()
            return True
        return await self.break_stream(sc, resp, i, b"data: {not json\n\n")


if __name__ == "__main__":
    FakeOpenAI.main()

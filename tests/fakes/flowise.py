"""Fake Flowise (3.1.3) prediction API over real HTTP: SSE and JSON answers, abort, ping, faults.

Run standalone: `python -m tests.fakes.flowise --port 8101`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

from tests.fakes._server import (
    COMMON_DEFAULTS,
    FakeServer,
    Request,
    Responder,
    Scenario,
    decode_data_url,
    describe_image,
)

PREDICTION_RE = re.compile(r"^/api/v1/prediction/([^/]+)/?$")
ABORT_RE = re.compile(r"^/api/v1/chatmessage/abort/([^/]+)/([^/]+)/?$")
STREAMING_RE = re.compile(r"^/api/v1/chatflows-streaming/([^/]+)/?$")
# What Flowise accepts as a chatflow id (the `uuid` package's validate: a version 1-8 and the
# RFC variant, or the nil UUID): a real 3.1.4 answered 00000000-0000-0000-0000-000000000001 with
# 400 "Invalid Chatflow ID" (ai_protocols.md §6).
UUID_RE = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r"|00000000-0000-0000-0000-000000000000)$",
    re.I,
)

UNAUTHORIZED = "Error: predictionsServices.buildChatflow - Unauthorized"
DEFAULT_ERROR = "Error: predictionsServices.buildChatflow - Something went wrong"
RATE_LIMIT_MESSAGE = "Too many requests, please try again later."
UI_PAGE = b"<!DOCTYPE html><html><head><title>Flowise</title></head><body><div id='root'></div></body></html>"

SSE_HEADERS = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("Connection", "keep-alive"),
    ("X-Accel-Buffering", "no"),
]

FLOWISE_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "json_fallback": False,
    "old_end_frame": False,
    "source_documents": None,
    # An agent flow's tool use (ai_protocols.md §1.7): IUsedTool items {tool, toolInput,
    # toolOutput, error?} sent as `usedTools`, and IAgentReasoning items as `agentReasoning`,
    # after the tokens (in the JSON answer as the same keys).
    "used_tools": None,
    "agent_reasoning": None,
    "known_chatflows": None,  # list of ids; others get 404 when set
    # Real Flowise never answers a pre-stream error (bad or unknown chatflow id) of a streaming
    # request: the connection is held, then dropped (ai_protocols.md §1.9, §6).
    "hang_on_prestream_error": True,
    # Abort (PUT /api/v1/chatmessage/abort/...) stops agent flows only; a plain chatflow answers
    # 200 and its stream finishes normally, with no `abort` event (ai_protocols.md §1.12, §6).
    "agent_flow": False,
    "rate_limit_message": RATE_LIMIT_MESSAGE,
    "memory_type": "Buffer Memory",
}


def frame(event: str, data: Any) -> bytes:
    """Exactly what Flowise's SSEStreamer writes per event (compact JSON, no space after data:)."""
    payload = json.dumps({"event": event, "data": data}, ensure_ascii=False, separators=(",", ":"))
    return b"message:\ndata:" + payload.encode() + b"\n\n"


def end_frame(old: bool) -> bytes:
    # Up to 3.1.1 the end frame began with a bare `message` line (no colon).
    head = b"message\n" if old else b"message:\n"
    return head + b'data:{"event":"end","data":"[DONE]"}\n\n'


def envelope(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "success": False, "message": message, "stack": {}}


def default_answer(body: dict[str, Any]) -> str:
    """`You asked: <question>` plus one `[Image <hash>]` per uploaded image."""
    answer = f"You asked: {body.get('question', '')}"
    for up in body.get("uploads") or []:
        if isinstance(up, dict) and str(up.get("mime", "")).startswith("image/"):
            data = decode_data_url(up.get("data", ""))
            if data is not None:
                answer += f" [{describe_image(data)}]"
    return answer


class FakeFlowise(FakeServer):
    """Flowise prediction API. Extra state: `.aborts` (list of (chatflow_id, chat_id, time))."""

    name = "fake-flowise"
    DEFAULTS = FLOWISE_DEFAULTS

    def _init_state(self) -> None:
        self.aborts: list[tuple[str, str, float]] = []
        self._running: dict[str, asyncio.Event] = {}

    def _on_reset(self) -> None:
        self.aborts.clear()

    async def handle_control(self, req: Request, resp: Responder) -> bool:
        if req.path.rstrip("/") == "/__fake__/aborts":
            await resp.send(200, [list(a) for a in self.aborts])
            return True
        return False

    async def handle(self, req: Request, resp: Responder) -> None:
        path = req.path
        if req.method == "POST" and (m := PREDICTION_RE.match(path)):
            await self._prediction(req, resp, m.group(1))
        elif req.method == "PUT" and (m := ABORT_RE.match(path)):
            flow_id, chat_id = m.group(1), m.group(2)
            self.aborts.append((flow_id, chat_id, time.time()))
            ev = self._running.get(f"{flow_id}_{chat_id}")
            if ev is not None and self.scenario.get("agent_flow"):
                ev.set()
            await resp.send(200, {"status": 200, "message": "Chat message aborted"})
        elif req.method == "GET" and path.rstrip("/") == "/api/v1/ping":
            await resp.send(200, "pong", content_type="text/html; charset=utf-8")
        elif req.method == "GET" and path.rstrip("/") == "/api/v1/version":
            await resp.send(200, {"version": "3.1.3"})
        elif req.method == "GET" and STREAMING_RE.match(path):
            await resp.send(200, {"isStreaming": not self.scenario.get("json_fallback")})
        elif path.startswith("/api/"):
            if "authorization" not in req.headers:
                await resp.send(401, {"error": "Unauthorized Access"})
            else:
                await resp.send(404, envelope(404, f"Cannot {req.method} {path}"))
        else:
            # Flowise serves its UI for any other path, with 200.
            await resp.send(200, UI_PAGE, content_type="text/html; charset=utf-8")

    async def _prediction(self, req: Request, resp: Responder, flow_id: str) -> None:
        sc = self.take_scenario()
        body = req.json if isinstance(req.json, dict) else {}
        streaming = body.get("streaming") in (True, "true")
        override = body.get("overrideConfig")
        session_id = override.get("sessionId") if isinstance(override, dict) else None
        chat_id = body.get("chatId") or session_id or str(uuid.uuid4())

        if await self.before_headers(sc, resp):
            return
        if sc.status:
            await self._error_status(resp, sc, int(sc.status), flow_id)
            return
        if req.body and req.json is None:
            await resp.send(400, envelope(400, "Unexpected token in JSON"))
            return
        if not UUID_RE.match(flow_id):
            await self._prestream_error(resp, sc, streaming, 400, "Invalid Chatflow ID")
            return
        known = sc.get("known_chatflows")
        if known is not None and flow_id not in known:
            msg = f"Chatflow {flow_id} not found in the database!"
            await self._prestream_error(resp, sc, streaming, 404, msg)
            return
        if override == "":
            msg = "Error: predictionsServices.buildChatflow - Cannot create property 'startState' on string ''"
            await resp.send(500, envelope(500, msg))
            return

        authorized = True
        if sc.api_key:
            header = req.headers.get("authorization", "")
            authorized = bool(header) and header.split("Bearer ").pop() == sc.api_key

        tokens = self.answer_tokens(sc, default_answer(body))
        if sc.empty_answer:
            tokens = []
        info = {
            "chat_id": chat_id,
            "session_id": session_id,
            "question": body.get("question", ""),
            "flow_id": flow_id,
        }
        if streaming and not sc.json_fallback:
            await self._stream(resp, sc, tokens, info, authorized)
        else:
            await self._json(resp, sc, tokens, info, authorized)

    async def _prestream_error(
        self, resp: Responder, sc: Scenario, streaming: bool, status: int, message: str
    ) -> None:
        if streaming and sc.hang_on_prestream_error:
            await resp.wait_peer_closed()
        else:
            await resp.send(status, envelope(status, message))

    async def _error_status(self, resp: Responder, sc: Scenario, status: int, flow_id: str) -> None:
        headers: list[tuple[str, str]] = []
        if sc.retry_after is not None and status in (429, 503):
            headers.append(("Retry-After", str(sc.retry_after)))
        if status == 429:
            # express-rate-limit: legacy headers + plain text/html body, even for streaming requests.
            headers += [
                ("X-RateLimit-Limit", "10"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(int(time.time()) + 60)),
            ]
            msg = sc.get("rate_limit_message") or RATE_LIMIT_MESSAGE
            await resp.send(429, msg, content_type="text/html; charset=utf-8", headers=headers)
        elif status == 403:
            msg = sc.error_message or "This site is not allowed to access this chatbot"
            await resp.send(403, msg, content_type="text/html; charset=utf-8", headers=headers)
        elif status in (502, 503, 504):
            # These come from a proxy in front of Flowise, not from Flowise itself.
            page = f"<html><body><h1>{status}</h1>upstream unavailable</body></html>"
            await resp.send(status, page, content_type="text/html", headers=headers)
        else:
            defaults = {
                400: "Invalid Chatflow ID",
                401: "Unauthorized Access",
                404: f"Chatflow {flow_id} not found in the database!",
                413: "request entity too large",
            }
            msg = sc.error_message or defaults.get(status, DEFAULT_ERROR)
            await resp.send(status, envelope(status, msg), headers=headers)

    async def _json(
        self, resp: Responder, sc: Scenario, tokens: list[str], info: dict, authorized: bool
    ) -> None:
        if not authorized:
            await resp.send(500, envelope(500, UNAUTHORIZED))
            return
        if sc.error_after_tokens is not None:
            await resp.send(500, envelope(500, sc.error_message or DEFAULT_ERROR))
            return
        if await self.wait_whole_answer(sc, resp, len(tokens)):
            return
        if sc.malformed_after_tokens is not None:
            await resp.send(200, b'{"text": "unterminated', content_type="application/json")
            return
        out: dict[str, Any] = {
            "text": "".join(tokens),
            "question": info["question"],
            "chatId": info["chat_id"],
            "chatMessageId": str(uuid.uuid4()),
            "isStreamValid": False,
        }
        if info["session_id"]:
            out["sessionId"] = info["session_id"]
        out["memoryType"] = sc.memory_type
        if sc.source_documents:
            out["sourceDocuments"] = sc.source_documents
        if sc.used_tools:
            out["usedTools"] = sc.used_tools
        if sc.agent_reasoning:
            out["agentReasoning"] = sc.agent_reasoning
        for i in range(len(tokens)):
            self.emit(info["chat_id"], i)
        await resp.send(200, out)

    async def _stream(
        self, resp: Responder, sc: Scenario, tokens: list[str], info: dict, authorized: bool
    ) -> None:
        # Flowise flushes the 200 headers before it validates the key or runs the flow.
        await resp.start(200, SSE_HEADERS)
        chat_id = info["chat_id"]
        key = f"{info['flow_id']}_{chat_id}"
        aborted = self._running[key] = asyncio.Event()
        beat = self.heartbeat(resp, sc.heartbeat_interval, b":heartbeat\n\n")
        try:
            if not authorized:
                await resp.write(frame("error", UNAUTHORIZED))
                await resp.write(end_frame(sc.old_end_frame))
                await resp.finish()
                return
            if sc.delay_before_first_token:
                await asyncio.sleep(sc.delay_before_first_token)
            finished = await self.run_tokens(
                resp,
                sc,
                chat_id,
                [frame("token", t) for t in tokens],
                lambda i: self._interrupt(resp, sc, i, aborted),
                # A ChatOpenAI chat model's `start` carries "" (langchain's first chunk is the
                # empty role chunk), as a real 3.1.4 sent it.
                first=frame("start", "") if tokens else None,
                aborted=aborted,
            )
            if not finished:
                return
            if sc.no_end:
                await resp.wait_peer_closed()
                return
            if sc.source_documents:
                await resp.write(frame("sourceDocuments", sc.source_documents))
            if sc.used_tools:
                await resp.write(frame("usedTools", sc.used_tools))
            if sc.agent_reasoning:
                await resp.write(frame("agentReasoning", sc.agent_reasoning))
            meta = {
                "chatId": chat_id,
                "chatMessageId": str(uuid.uuid4()),
                "question": info["question"],
            }
            if info["session_id"]:
                meta["sessionId"] = info["session_id"]
            meta["memoryType"] = sc.memory_type
            await resp.write(frame("metadata", meta))
            await resp.write(end_frame(sc.old_end_frame))
            await resp.finish()
        finally:
            if self._running.get(key) is aborted:
                del self._running[key]
            if beat is not None:
                beat.cancel()

    async def _interrupt(
        self, resp: Responder, sc: Scenario, i: int, aborted: asyncio.Event
    ) -> bool:
        """Apply the per-position fault knobs before token i; True when the stream is over."""
        if aborted.is_set():
            await resp.write(frame("abort", "[DONE]"))
            await resp.write(end_frame(sc.old_end_frame))
            await resp.finish()
            return True
        if sc.error_after_tokens == i:
            await resp.write(frame("error", sc.error_message or DEFAULT_ERROR))
            await resp.write(end_frame(sc.old_end_frame))
            await resp.finish()
            return True
        return await self.break_stream(sc, resp, i, b"message:\ndata:{not json\n\n")


if __name__ == "__main__":
    FakeFlowise.main()

"""Plain data passed to and returned by the AI clients: request, events, timeouts, retries, stats."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# `tool_calls`: the model asked for tools (data: [{"id", "name", "arguments"}], arguments as the
# JSON text the model wrote); `tool_call` / `tool_result`: the tool loop's steps (tools.loop).
EventKind = Literal[
    "token", "source_documents", "metadata", "usage", "tool_calls", "tool_call", "tool_result"
]


@dataclass
class UpstreamRequest:
    base_url: str  # Flowise: server root; OpenAI-compatible: includes /v1
    api_key: str  # may be ""
    target: str  # Flowise chatflow id, or the OpenAI model name
    question: str
    # [{"role": "user" | "assistant", "content": str}], oldest first
    history: list[dict[str, str]] = field(default_factory=list)
    system_prompt: str | None = None
    session_id: str = ""
    chat_id: str = ""
    override_config: dict[str, Any] = field(default_factory=dict)
    images: list[dict[str, str]] = field(default_factory=list)  # {"name", "mime", "data_b64"}
    extra_context: str | None = None
    # Tool calling (OpenAI-compatible only): function definitions offered to the model, the
    # `tool_choice`, and the assistant tool-call and `tool` result messages of earlier steps of
    # this turn, sent after the user message.
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | None = None
    tool_messages: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        # Keeps keys and image bytes out of logs and tracebacks.
        return (
            f"UpstreamRequest(base_url={self.base_url!r}, target={self.target!r}, "
            f"chat_id={self.chat_id!r}, images={len(self.images)})"
        )


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    kind: EventKind
    text: str = ""
    data: Any = None


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    # Longest silence between received bytes, including the wait for the response headers.
    # Flowise >= 3.1.2 sends a heartbeat every 30 s, so this must stay above 30.
    read_idle: float = 60.0
    total: float = 300.0
    # Longest wait for a free pooled connection; None = bounded only by `total`.
    pool: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    # A Retry-After above this means "not worth waiting": fail now and tell the user.
    retry_after_cap: float = 30.0


@dataclass
class CallStats:
    """Filled in by a client during one call (all attempts); times are time.monotonic()."""

    attempts: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    status_code: int | None = None
    request_started: float | None = None
    request_started_wall: float | None = None  # time.time()
    headers_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    tokens: int = 0  # token events yielded
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    model: str | None = None
    finish_reason: str | None = None
    error_code: str | None = None
    pool_wait_seconds: float | None = None  # time waiting for a pooled connection (last attempt)

    def mark_start(self) -> None:
        self.request_started = time.monotonic()
        self.request_started_wall = time.time()

    def mark_token(self) -> None:
        self.tokens += 1
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def _since_start(self, t: float | None) -> float | None:
        if t is None or self.request_started is None:
            return None
        return t - self.request_started

    @property
    def time_to_headers(self) -> float | None:
        return self._since_start(self.headers_at)

    @property
    def time_to_first_token(self) -> float | None:
        return self._since_start(self.first_token_at)

    @property
    def duration(self) -> float | None:
        return self._since_start(self.finished_at)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time_to_headers"] = self.time_to_headers
        out["time_to_first_token"] = self.time_to_first_token
        out["duration"] = self.duration
        return out

"""Plain data passed to and returned by the AI clients: request, events, timeouts, retries, stats."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# `tool_calls`: the model asked for tools (data: [{"id", "name", "arguments"}], arguments as the
# JSON text the model wrote); `tool_call` / `tool_result`: the tool loop's steps (tools.loop).
# `warning`: the call ended in a way worth recording that did not fail it (data: {"code",
# "detail"}), e.g. an answer whose end never came (flowise.py, answer_tail).
EventKind = Literal[
    "token",
    "source_documents",
    "metadata",
    "usage",
    "tool_calls",
    "tool_call",
    "tool_result",
    "warning",
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
    # Flowise: once answer tokens have arrived, this long with no event (its `:heartbeat`
    # comments keep the connection alive, nothing else comes) ends the wait: the answer is
    # kept as streamed and the call completes with a warning. Real Flowise 3.1.4 was seen to
    # stream every token, then send only heartbeats for minutes before `metadata` and `end`.
    # Above the 30 s heartbeat interval; None waits until `total`.
    answer_tail: float | None = 90.0
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


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def normalise_usage(raw: Any) -> dict[str, int]:
    """Token usage in one shape, whatever the server sent: `prompt_tokens`,
    `completion_tokens` and `total_tokens` as non-negative integers, each only when known.
    Accepts the Responses/Anthropic names (`input_tokens`, `output_tokens`); drops nulls,
    non-numbers and every other key (an OpenAI-compatible server was seen putting nulls and
    extra keys on its finish chunk)."""
    if not isinstance(raw, dict):
        return {}
    aliases = {
        "prompt_tokens": ("prompt_tokens", "input_tokens"),
        "completion_tokens": ("completion_tokens", "output_tokens"),
        "total_tokens": ("total_tokens",),
    }
    usage: dict[str, int] = {}
    for key, names in aliases.items():
        for name in names:
            value = raw.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue
            if value >= 0 and value == int(value) and value < 2**53:
                usage[key] = int(value)
                break
    if "total_tokens" not in usage and {"prompt_tokens", "completion_tokens"} <= usage.keys():
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage

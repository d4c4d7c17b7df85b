"""Request, retry and timeout machinery shared by the streaming AI clients.

Retries all happen in `open_stream`, i.e. before any byte of an answer was read, so a retry can
never duplicate text the user already saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx

from aiclients import errors as E
from aiclients.errors import UpstreamError
from aiclients.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    SSEEvent,
    SSEEventTooLarge,
    SSEParser,
)
from aiclients.types import CallStats, RetryPolicy, Timeouts, UpstreamEvent
from outbound import guard
from outbound.http import retry_after_seconds

MAX_ERROR_BODY = 64 * 1024
# What the customer reads when the AI service's address is refused at request time: only staff
# can change it, retrying cannot help.
REFUSED = "The assistant is not set up correctly (its address is not allowed). Please contact us."
MAX_JSON_BODY = 32 * 1024 * 1024

# (error, may this attempt be retried by the client itself)
Classified = tuple[UpstreamError, bool]
Classifier = Callable[[httpx.Response, bytes], Classified]


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI's), else `retry-after` (seconds or an HTTP
    date, read by the one parser every outbound client shares: outbound.http)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def backoff_delay(attempt: int, retry: RetryPolicy) -> float:
    # Same shape as the OpenAI SDK: exponential, capped, with 0.75-1.0 jitter.
    base = min(retry.backoff_base * 2 ** (attempt - 1), retry.backoff_max)
    return base * (1 - 0.25 * random.random())


def content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def body_text(body: bytes, limit: int = 500) -> str:
    return body[:limit].decode("utf-8", "replace").strip()


def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


async def open_stream(
    client: httpx.AsyncClient,
    *,
    url: str,
    headers: dict[str, str],
    payload: dict[str, Any],
    timeouts: Timeouts,
    retry: RetryPolicy,
    stats: CallStats,
    secrets: Iterable[str],
    classify: Classifier,
) -> tuple[httpx.Response, float]:
    """POST until a 2xx response arrives; returns it (body unread) and the loop-time deadline."""
    secrets = tuple(secrets)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total
    stats.mark_start()
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timeout = httpx.Timeout(
        connect=timeouts.connect,
        read=timeouts.read_idle,
        write=timeouts.read_idle,
        pool=timeouts.pool,
    )
    attempt = 0
    while True:
        attempt += 1
        stats.attempts = attempt
        response, err, may_retry = await _attempt(
            client, url, headers, content, timeout, deadline, stats, secrets, classify
        )
        if response is not None:
            return response, deadline
        assert err is not None
        delay = _retry_delay(err, may_retry, attempt, retry)
        if delay is None or loop.time() + delay >= deadline:
            stats.error_code = err.code
            stats.finished_at = time.monotonic()
            raise err
        stats.retries += 1
        stats.retry_wait_seconds += delay
        await asyncio.sleep(delay)


# A client's reader of one answer body: (response, loop-time deadline) -> its events.
BodyEvents = Callable[[httpx.Response, float], AsyncGenerator[UpstreamEvent, None]]


def stream_headers(api_key: str | None) -> dict[str, str]:
    """The request headers of a streamed call: JSON in, SSE or JSON out, never compressed."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream, application/json",
        "Accept-Encoding": "identity",  # compression would buffer the stream
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


async def stream_call(
    client: httpx.AsyncClient,
    *,
    url: str,
    api_key: str | None,
    payload: dict[str, Any],
    timeouts: Timeouts,
    retry: RetryPolicy,
    stats: CallStats,
    classify: Classifier,
    readers: dict[str, BodyEvents],
    unexpected: str = "",
    refuse: UpstreamError | None = None,
) -> AsyncIterator[UpstreamEvent]:
    """The skeleton every streaming client shares: open the stream (retrying before the first
    answer byte), read the body with the reader for its content type, and on the way out record
    how the call ended and scrub the key from any error. `unexpected` ends the message for a
    content type no reader takes (e.g. " from Flowise"); `refuse` is raised before any request
    (a call the client knows the service cannot answer)."""
    if refuse is not None:
        stats.error_code = refuse.code
        raise refuse
    secrets = (api_key,) if api_key else ()
    response, deadline = await open_stream(
        client,
        url=url,
        headers=stream_headers(api_key),
        payload=payload,
        timeouts=timeouts,
        retry=retry,
        stats=stats,
        secrets=secrets,
        classify=classify,
    )
    try:
        ctype = content_type(response)
        read = readers.get(ctype)
        if read is None:
            raise UpstreamError(
                E.UPSTREAM_BAD_RESPONSE,
                f"unexpected content-type {ctype!r}{unexpected}",
                status=response.status_code,
            )
        events = read(response, deadline)
        async with aclosing(events):
            async for event in events:
                yield event
    except UpstreamError as err:
        err.tokens_emitted = stats.tokens
        stats.error_code = err.code
        err.scrub(secrets)
        raise
    finally:
        stats.finished_at = time.monotonic()
        await response.aclose()


def _retry_delay(
    err: UpstreamError, may_retry: bool, attempt: int, retry: RetryPolicy
) -> float | None:
    if not may_retry or attempt > retry.max_retries:
        return None
    if err.retry_after is not None:
        return None if err.retry_after > retry.retry_after_cap else err.retry_after
    return backoff_delay(attempt, retry)


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    content: bytes,
    timeout: httpx.Timeout,
    deadline: float,
    stats: CallStats,
    secrets: tuple[str, ...],
    classify: Classifier,
) -> tuple[httpx.Response | None, UpstreamError | None, bool]:
    """One POST: the response if it is a 2xx, else the error and whether the client may ask
    again; the wait for a pooled connection goes into `stats` either way."""
    sent_at = time.monotonic()
    first_io: list[float] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        # The transport traces its first step (connect, or send on a reused socket) only once a
        # pooled connection is ours, so the gap until then is the wait for the pool.
        if not first_io:
            first_io.append(time.monotonic())

    request = client.build_request(
        "POST", url, headers=headers, content=content, timeout=timeout, extensions={"trace": trace}
    )

    try:
        async with asyncio.timeout_at(deadline):
            response = await client.send(request, stream=True)
    except (httpx.TransportError, TimeoutError) as exc:
        err, may_retry = _send_failure(exc, timeout, secrets)
        return None, err, may_retry
    finally:
        if first_io:
            stats.pool_wait_seconds = first_io[0] - sent_at

    stats.status_code = response.status_code
    stats.headers_at = time.monotonic()
    if 200 <= response.status_code < 300:
        return response, None, False
    err, may_retry = await _refusal(response, deadline, classify)
    return None, err, may_retry


def _send_failure(
    exc: BaseException, timeout: httpx.Timeout, secrets: tuple[str, ...]
) -> Classified:
    """What went wrong before any response headers, and whether asking again is safe: only
    when the server cannot have the request yet (or dropped a stale keep-alive socket)."""

    def fail(code: str, detail: str, **kw: Any) -> UpstreamError:
        return UpstreamError(code, detail, secrets=secrets, **kw)

    if isinstance(exc, httpx.ConnectTimeout):
        return fail(E.UPSTREAM_CONNECT_TIMEOUT, f"connect timed out after {timeout.connect}s"), True
    if isinstance(exc, httpx.PoolTimeout):
        detail = f"no free pooled connection within {timeout.pool}s"
        return fail(E.UPSTREAM_CONNECT_TIMEOUT, detail), False
    if isinstance(exc, guard.RefusedConnection):
        # The name now leads to this machine or a private network (DNS rebinding, or a URL
        # saved while ALLOW_PRIVATE_NETWORK_URLS was on): asking again leads to the same place.
        detail = f"refused by the address guard: {exc}"
        return fail(E.UPSTREAM_UNAVAILABLE, detail, retryable=False, message=REFUSED), False
    if isinstance(exc, httpx.ConnectError):
        return fail(E.UPSTREAM_UNAVAILABLE, f"connect failed: {exc}"), True
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        # The server has the request; retrying a prediction could run it twice, and Flowise's
        # known hang on pre-stream errors would just hang again.
        detail = f"no response headers within {timeout.read}s"
        return fail(E.UPSTREAM_TIMEOUT, detail), False
    if isinstance(exc, TimeoutError):
        detail = "total time limit reached before response headers"
        return fail(E.UPSTREAM_TIMEOUT, detail), False
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        # Typically a keep-alive connection the server had already closed: safe to retry.
        detail = f"connection closed before a response: {exc!r}"
        return fail(E.UPSTREAM_UNAVAILABLE, detail, category=E.NETWORK), True
    return fail(E.UPSTREAM_UNAVAILABLE, f"transport error: {exc!r}"), False


async def _refusal(response: httpx.Response, deadline: float, classify: Classifier) -> Classified:
    """A non-2xx answer as the client's error: its body (capped, best effort) is read and
    the connection released before the client classifies it."""
    try:
        body = await read_body(response, deadline, MAX_ERROR_BODY, truncate=True)
    except UpstreamError:
        body = b""
    finally:
        await response.aclose()
    return classify(response, body)


class BodyReader:
    """Reads a response body chunk by chunk under the idle and total time limits.

    httpx enforces the idle limit on every socket read. The total limit only needs its own
    timer when less than one idle period is left; until then an idle timeout would fire first,
    and skipping the timer saves a noticeable share of the per-token cost.
    """

    def __init__(self, response: httpx.Response, deadline: float):
        # No content-encoding (we ask for identity): skip httpx's decoder and chunker layers.
        encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
        self._it = response.aiter_bytes() if encoded else response.aiter_raw()
        self._deadline = deadline
        timeout = response.request.extensions.get("timeout") or {}
        self._read_idle = timeout.get("read") or 0.0
        self._loop = asyncio.get_running_loop()

    async def next(self, tokens: int = 0) -> bytes | None:
        """Next chunk, or None at EOF; timeouts and cut connections become UpstreamErrors."""
        left = self._deadline - self._loop.time()
        try:
            if left <= 0:
                raise TimeoutError
            if not self._read_idle or left < self._read_idle:
                async with asyncio.timeout_at(self._deadline):
                    return await anext(self._it)
            return await anext(self._it)
        except StopAsyncIteration:
            return None
        except httpx.ReadTimeout:
            detail = "stream went silent (read idle timeout)"
            raise UpstreamError(E.UPSTREAM_TIMEOUT, detail, tokens_emitted=tokens) from None
        except TimeoutError:
            detail = "total time limit reached while reading the answer"
            raise UpstreamError(E.UPSTREAM_TIMEOUT, detail, tokens_emitted=tokens) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            detail = f"connection closed mid-stream: {exc!r}"
            raise UpstreamError(E.UPSTREAM_TRUNCATED, detail, tokens_emitted=tokens) from None
        except httpx.DecodingError as exc:
            detail = f"undecodable body: {exc!r}"
            raise UpstreamError(E.UPSTREAM_BAD_RESPONSE, detail, tokens_emitted=tokens) from None

    async def drain(self, limit: int = 64 * 1024, timeout: float = 1.0) -> None:
        """Read the rest of the body after the final event, best effort.

        Only a fully read response gives its connection back to the pool; otherwise every
        answer would pay for a new TCP (and TLS) handshake.
        """
        deadline = min(self._deadline, self._loop.time() + timeout)
        size = 0
        with contextlib.suppress(Exception):
            async with asyncio.timeout_at(deadline):
                async for chunk in self._it:
                    size += len(chunk)
                    if size > limit:
                        return


async def read_body(
    response: httpx.Response, deadline: float, limit: int, *, truncate: bool = False
) -> bytes:
    """Whole body, bounded by size and the call's deadline."""
    parts: list[bytes] = []
    size = 0
    reader = BodyReader(response, deadline)
    while (chunk := await reader.next()) is not None:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                break
            raise UpstreamError(E.UPSTREAM_TOO_LARGE, f"response body larger than {limit} bytes")
    return b"".join(parts)


@dataclass
class QuietTail:
    """What a stream sent since its last event, for the rule on answers whose end never comes
    (Timeouts.answer_tail): when the last event came, and whether bytes with no event in them
    (SSE comments: Flowise's `:heartbeat`) arrived since."""

    answer_tail: float | None
    last_event_at: float = 0.0
    heartbeats_since_event: bool = False

    def elapsed(self, now: float) -> bool:
        return self.answer_tail is not None and now - self.last_event_at >= self.answer_tail


class AnswerTailElapsed(Exception):
    """Answer tokens arrived, then only heartbeats for `answer_tail` seconds."""


async def sse_events(
    reader: BodyReader,
    stats: CallStats,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    *,
    quiet: QuietTail | None = None,
) -> AsyncIterator[SSEEvent]:
    """SSE events of a response body; returns at EOF (the caller decides whether that is early).

    With `quiet`, raises AnswerTailElapsed once answer tokens have arrived and then only
    event-less bytes for quiet.answer_tail seconds (checked as those bytes arrive: a stream
    that goes wholly silent ends by the read-idle timeout instead)."""
    parser = SSEParser(max_event_bytes)
    loop = asyncio.get_running_loop()
    if quiet is not None:
        quiet.last_event_at = loop.time()
    while (chunk := await reader.next(stats.tokens)) is not None:
        try:
            events = parser.feed(chunk)
        except SSEEventTooLarge as exc:
            raise UpstreamError(
                E.UPSTREAM_TOO_LARGE, str(exc), tokens_emitted=stats.tokens
            ) from None
        if quiet is not None:
            now = loop.time()
            if events:
                quiet.last_event_at, quiet.heartbeats_since_event = now, False
            else:
                quiet.heartbeats_since_event = True
                if stats.tokens and quiet.elapsed(now):
                    raise AnswerTailElapsed
        for event in events:
            yield event


def status_error(
    status: int,
    detail: str,
    *,
    secrets: Iterable[str],
    retry_after: float | None = None,
    retry_statuses: frozenset[int] = frozenset({502, 503, 504}),
) -> Classified:
    """Default mapping of an HTTP error status to an error code and the retry decision."""
    kw: dict[str, Any] = {"status": status, "secrets": secrets, "retry_after": retry_after}
    if status == 429:
        return UpstreamError(E.UPSTREAM_RATE_LIMITED, detail, **kw), True
    if status in (401, 403):
        return UpstreamError(E.UPSTREAM_AUTH, detail, **kw), False
    if status == 413:
        return UpstreamError(E.UPSTREAM_TOO_LARGE, detail, **kw), False
    if status == 408:
        return UpstreamError(E.UPSTREAM_TIMEOUT, detail, category=E.UPSTREAM_AI, **kw), True
    if status >= 500:
        err = UpstreamError(E.UPSTREAM_UNAVAILABLE, detail, category=E.UPSTREAM_AI, **kw)
        return err, status in retry_statuses
    return UpstreamError(E.UPSTREAM_BAD_REQUEST, detail, **kw), False

"""HTTP for order platforms: pooled per source, retried with backoff, every call timed and counted.

Counters live in Redis per source (`cb:orders:stats:<source id>`, see orders.selectors) so
operators can see calls, errors, retries and throttling without a database table.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from typing import Any

import httpx
from django.conf import settings

from orders.providers.base import OrderSourceError
from outbound import guard, policy
from outbound.http import retry_after_seconds

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
MAX_BODY_BYTES = 5 * 1024 * 1024
USER_AGENT = "chatbot-backend-orders/1.0"

# One pool per (event loop, source): the worker runs every turn on one loop, so a shop's lookups
# share at most ORDERS_POOL_CONNECTIONS sockets per worker process.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def new_client(*, timeout: float) -> httpx.AsyncClient:
    connections = settings.ORDERS_POOL_CONNECTIONS
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,  # a redirect would carry our credentials to another host
        trust_env=settings.UPSTREAM_TRUST_ENV,
        headers={"User-Agent": USER_AGENT},
        # The address each new connection reached is checked before the request is written
        # (outbound/guard.py): a name that turned private since it was saved is refused.
        event_hooks=policy.async_hooks(),
    )


def pooled_client(*, source_id: int, timeout: float) -> httpx.AsyncClient:
    """The pooled client of this source on the running loop (created on first use)."""
    loop = asyncio.get_running_loop()
    per_loop = _pools.setdefault(loop, {})
    key = (source_id, settings.ORDERS_POOL_CONNECTIONS, timeout)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        client = per_loop[key] = new_client(timeout=timeout)
    return client


def url_host(url: str) -> str:
    try:
        return httpx.URL(url).host or "this address"
    except httpx.InvalidURL:
        return "this address"


class OrderHttp:
    """Requests for one lookup (or one connection test) against one source.

    Retries connection errors, timeouts and 429/502/503/504 up to ORDERS_MAX_ATTEMPTS times,
    waiting Retry-After when given (else exponential backoff with jitter), within a total wait
    budget of ORDERS_MAX_RETRY_WAIT seconds and an overall deadline, so the customer never waits
    for an answer that cannot come.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        source_id: int,
        timeout: float,
        secrets: list[str] | None = None,
    ) -> None:
        self.client = client
        self.source_id = source_id
        self.timeout = timeout
        self.secrets = [s for s in (secrets or []) if s]
        self.deadline = time.monotonic() + settings.ORDERS_LOOKUP_DEADLINE
        self.wait_budget = settings.ORDERS_MAX_RETRY_WAIT
        self.counters: dict[str, int] = {}
        self.calls: list[dict[str, Any]] = []  # (op, status, ms) of each attempt, for tests/logs

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "••••••••")
        return text

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def wait(self, seconds: float, *, unless: OrderSourceError) -> None:
        """Sleep before a retry, or raise `unless` when the wait does not fit the budget."""
        seconds = max(0.0, seconds)
        if seconds > self.wait_budget or seconds > self.remaining() - 0.05:
            if unless.reason == "rate_limited":
                unless.message += (
                    f" It asked us to wait {seconds:.1f} s, longer than a customer can wait."
                )
                unless.args = (unless.message,)
            raise unless
        self.wait_budget -= seconds
        self.count("retries")
        if seconds:
            await asyncio.sleep(seconds)

    def backoff(self, attempt: int) -> float:
        base = settings.ORDERS_RETRY_BACKOFF * 2 ** (attempt - 1)
        return min(base, 5.0) * (1 - 0.25 * random.random())

    async def send(
        self,
        method: str,
        url: str,
        *,
        op: str,
        retry_statuses: frozenset[int] = RETRYABLE_STATUSES,
        **kwargs: Any,
    ) -> httpx.Response:
        """The platform's answer to one request, asked again (within ORDERS_MAX_ATTEMPTS and the
        lookup's time and wait budgets) after a transport failure or a status in
        `retry_statuses`; an answer with any other status is returned as it is."""
        attempts = max(1, settings.ORDERS_MAX_ATTEMPTS)
        for attempt in range(1, attempts + 1):
            remaining = self.remaining()
            if remaining <= 0.05:
                raise OrderSourceError("timeout", "The lookup ran out of time.")
            timeout = min(self.timeout, remaining)
            response, error, refused = await self._request(method, url, op, timeout, kwargs)
            if refused:
                attempts = attempt  # the name leads to the same address again: no retry
            if error is not None:
                self.count("errors")
                self.count(error.reason)
                if attempt == attempts:
                    raise error
                await self.wait(self.backoff(attempt), unless=error)
                continue
            assert response is not None
            status = response.status_code
            if status not in retry_statuses:
                if status >= 400:
                    self.count("errors")
                return response
            failure = self._status_failure(response, op)
            if attempt == attempts:
                raise failure
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            delay = retry_after if retry_after is not None else self.backoff(attempt)
            await self.wait(delay, unless=failure)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self, method: str, url: str, op: str, timeout: float, kwargs: dict[str, Any]
    ) -> tuple[httpx.Response | None, OrderSourceError | None, bool]:
        """One request, counted and timed: its response, or the error it failed with and
        whether the address guard refused it (asking again would reach the same address)."""
        started = time.monotonic()
        error: OrderSourceError | None = None
        response: httpx.Response | None = None
        refused = False
        try:
            response = await self.client.request(
                method,
                url,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                **kwargs,
            )
        except httpx.TransportError as exc:
            # Staff read these messages (Test connection, the failure log): a refused,
            # closed, silent, reset or non-HTTP port reads alike, so the admin cannot map
            # which ports are open. Operators get the kind in the log.
            logger.warning("order platform %s: %s failed: %r", url_host(url), op, exc)
            reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "unavailable"
            error = OrderSourceError(reason, f"{guard.unreachable(url_host(url))} ({op})")
            refused = isinstance(exc, guard.RefusedConnection)
        ms = round((time.monotonic() - started) * 1000)
        self.count("calls")
        self.count("ms_total", ms)
        self.calls.append(
            {"op": op, "status": response.status_code if response else None, "ms": ms}
        )
        if response is not None and len(response.content) > MAX_BODY_BYTES:
            raise OrderSourceError("bad_response", f"The answer to {op} is too large.")
        return response, error, refused

    def _status_failure(self, response: httpx.Response, op: str) -> OrderSourceError:
        """The error a retryable status stands for (counted: an error, and a throttle for 429),
        raised if no attempt is left."""
        status = response.status_code
        self.count("errors")
        if status == 429:
            self.count("throttled")
            return OrderSourceError(
                "rate_limited", f"The platform answered 429 Too Many Requests ({op}).", status=429
            )
        return OrderSourceError(
            "unavailable", f"The platform answered HTTP {status} ({op}).", status=status
        )

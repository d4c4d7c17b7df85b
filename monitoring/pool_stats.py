"""Connection-pool statistics from every worker process, kept in Redis so any process can report.

Counters live in one hash per pool (`cb:mon:pool:<pool>`). Calls in flight are counted per
process in a second hash (`…:inflight`, field = host:pid) and only while that process's
heartbeat key lives, so a killed worker's calls stop counting within HEARTBEAT_TTL seconds and
the cache clean-up job removes its fields. The observer runs on the worker's event loop and
writes in background tasks with an asyncio client of that loop: a call never waits on Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

from chatbots.config_types import EndpointConfig
from chatbots.models import AIEndpoint
from config.redis import get_redis, new_async_redis
from monitoring.selectors import process_name

logger = logging.getLogger(__name__)

POOLS_KEY = "cb:mon:pools"
RESET_KEY = "cb:mon:pools:reset_at"
HEARTBEAT_SECONDS = 15
HEARTBEAT_TTL = 45
TIMEOUT_CODES = frozenset({"UPSTREAM_CONNECT_TIMEOUT", "UPSTREAM_TIMEOUT", "TURN_TIMEOUT"})
COUNTER_FIELDS = (
    "requests",
    "successes",
    "failures",
    "cancelled",
    "timeouts",
    "retries",
    "wait_seconds",
    "latency_ms",
    "last_call_at",
)


def counters_key(pool: str) -> str:
    return f"cb:mon:pool:{pool}"


def inflight_key(pool: str) -> str:
    return f"cb:mon:pool:{pool}:inflight"


def heartbeat_key(process: str) -> str:
    return f"cb:mon:proc:{process}"


def pool_name(endpoint: EndpointConfig) -> str:
    return f"ai:{endpoint.get('name', '?')}"


# --- writing (async, on the worker's loop) -----------------------------------------------------


@dataclass(eq=False)
class _LoopState:
    client: Any
    process: str
    pending: set[asyncio.Task] = field(default_factory=set)
    heartbeat: asyncio.Task | None = None
    last_warning: float = 0.0


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


def _state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    state = _states.get(loop)
    if state is None or state.process != process_name():
        state = _LoopState(client=new_async_redis(), process=process_name())
        _states[loop] = state
    if state.heartbeat is None or state.heartbeat.done():
        state.heartbeat = loop.create_task(_heartbeat(state))
    return state


async def _heartbeat(state: _LoopState) -> None:
    while True:
        try:
            await state.client.set(heartbeat_key(state.process), 1, ex=HEARTBEAT_TTL)
        except Exception:
            _warn(state, "pool statistics: Redis unavailable for the process heartbeat")
        await asyncio.sleep(HEARTBEAT_SECONDS)


def _warn(state: _LoopState, message: str) -> None:
    # At most one line a minute: an outage must not flood the log from every call.
    now = time.monotonic()
    if now - state.last_warning > 60:
        state.last_warning = now
        logger.warning(message)


async def pool_call(
    phase: str, *, pool: str, kind: str, limit: int, record: dict[str, Any] | None
) -> None:
    """Count one call of any pool (phase "start" or "end"); returns at once."""
    loop = asyncio.get_running_loop()
    state = _state(loop)
    task = loop.create_task(_write(state, phase, pool, kind, limit, record))
    state.pending.add(task)
    task.add_done_callback(state.pending.discard)


async def call_observer(
    phase: str, endpoint: EndpointConfig, record: dict[str, Any] | None
) -> None:
    """The AI call observer registered with conversations.hooks (pool `ai:<endpoint name>`)."""
    await pool_call(
        phase,
        pool=pool_name(endpoint),
        kind=str(endpoint.get("kind", "")),
        limit=int(endpoint.get("pool_size") or 0),
        record=record,
    )


async def drain() -> None:
    """Wait for this loop's pending writes (tests, and a worker shutting down)."""
    state = _states.get(asyncio.get_running_loop())
    if state and state.pending:
        await asyncio.gather(*list(state.pending), return_exceptions=True)


async def _write(
    state: _LoopState, phase: str, pool: str, kind: str, limit: int, record: dict | None
) -> None:
    counters, inflight = counters_key(pool), inflight_key(pool)
    pipe = state.client.pipeline(transaction=False)
    if phase == "start":
        pipe.sadd(POOLS_KEY, pool)
        pipe.hset(counters, mapping={"kind": kind, "pool_size": limit})
        pipe.hincrby(inflight, state.process, 1)
        pipe.set(heartbeat_key(state.process), 1, ex=HEARTBEAT_TTL)
    elif phase == "end":
        record = record or {}
        outcome = {"ok": "successes", "error": "failures"}.get(
            str(record.get("status")), "cancelled"
        )
        retries = record.get("retries")
        if retries is None:
            retries = max(0, int(record.get("attempts") or 1) - 1)
        pipe.sadd(POOLS_KEY, pool)
        pipe.hincrby(inflight, state.process, -1)
        pipe.hincrby(counters, "requests", 1)
        pipe.hincrby(counters, outcome, 1)
        if record.get("error_code") in TIMEOUT_CODES:
            pipe.hincrby(counters, "timeouts", 1)
        if retries:
            pipe.hincrby(counters, "retries", int(retries))
        pipe.hincrbyfloat(counters, "wait_seconds", float(record.get("pool_wait_seconds") or 0))
        pipe.hincrby(counters, "latency_ms", int(record.get("latency_ms") or 0))
        pipe.hset(counters, "last_call_at", time.time())
    else:
        return
    try:
        await pipe.execute()
    except Exception:
        _warn(state, "pool statistics: Redis unavailable; some calls were not counted")


# --- reading (sync, any process) -----------------------------------------------------------------


def _decode(mapping: dict) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in mapping.items()
    }


def _live_processes(client, processes: set[str]) -> set[str]:
    ordered = sorted(processes)
    if not ordered:
        return set()
    pipe = client.pipeline(transaction=False)
    for process in ordered:
        pipe.exists(heartbeat_key(process))
    return {p for p, alive in zip(ordered, pipe.execute(), strict=True) if alive}


@dataclass(frozen=True)
class PoolFigures:
    """One pool as operators see it; the field order is the JSON's key order (monitoring API)."""

    name: str
    kind: str
    endpoint_id: int | None
    configured: bool
    limit_per_process: int
    processes: int
    limit: int
    in_use: int
    waiting: int
    requests: int
    successes: int
    failures: int
    cancelled: int
    timeouts: int
    retries: int
    success_rate: float | None
    average_wait_seconds: float | None
    average_latency_ms: float | None
    last_call_at: float | None
    timeouts_config: dict[str, Any] | None


@dataclass(frozen=True)
class PoolReport:
    pools: tuple[PoolFigures, ...]
    counting_since: float | None

    def as_dict(self) -> dict[str, Any]:
        """The monitoring API's JSON: {"pools": [...], "counting_since": ...}."""
        return {
            "pools": [asdict(pool) for pool in self.pools],
            "counting_since": self.counting_since,
        }


def _configured_pools() -> dict[str, dict[str, Any]]:
    return {
        f"ai:{e['name']}": dict(e)
        for e in AIEndpoint.objects.values(
            "id", "name", "kind", "pool_size", "connect_timeout", "read_timeout", "total_timeout"
        )
    }


def _read_pools(client, names: list[str]) -> tuple[list[dict[str, str]], list[dict[str, int]], Any]:
    """Each pool's counters and per-process calls in flight, and the reset time: one round trip."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(counters_key(name))
        pipe.hgetall(inflight_key(name))
    pipe.get(RESET_KEY)
    replies = pipe.execute()
    reset_at = replies.pop()
    counters = [_decode(replies[i]) for i in range(0, len(replies), 2)]
    inflight = [
        {k: int(v) for k, v in _decode(replies[i]).items()} for i in range(1, len(replies), 2)
    ]
    return counters, inflight, reset_at


def _average(total: float, requests: int, digits: int) -> float | None:
    return round(total / requests, digits) if requests else None


def _pool_figures(
    name: str, endpoint: dict[str, Any] | None, counts: dict[str, str], alive: dict[str, int]
) -> PoolFigures:
    """One pool's figures: the endpoint's settings when configured, else what Redis recorded.
    `alive` is calls in flight per live process; beyond the pool size they are waiting."""
    size = int(endpoint["pool_size"] if endpoint else counts.get("pool_size") or 0)
    requests = int(counts.get("requests") or 0)
    successes = int(counts.get("successes") or 0)
    failures = int(counts.get("failures") or 0)
    finished = successes + failures
    return PoolFigures(
        name=name,
        kind=endpoint["kind"] if endpoint else counts.get("kind", ""),
        endpoint_id=endpoint["id"] if endpoint else None,
        configured=endpoint is not None,
        limit_per_process=size,
        processes=len(alive),
        limit=size * max(1, len(alive)),
        in_use=sum(min(n, size) if size else n for n in alive.values()),
        waiting=sum(max(0, n - size) for n in alive.values()) if size else 0,
        requests=requests,
        successes=successes,
        failures=failures,
        cancelled=int(counts.get("cancelled") or 0),
        timeouts=int(counts.get("timeouts") or 0),
        retries=int(counts.get("retries") or 0),
        success_rate=round(successes / finished, 4) if finished else None,
        average_wait_seconds=_average(float(counts.get("wait_seconds") or 0), requests, 4),
        average_latency_ms=_average(int(counts.get("latency_ms") or 0), requests, 1),
        last_call_at=float(counts["last_call_at"]) if counts.get("last_call_at") else None,
        timeouts_config=(
            {
                "connect": endpoint["connect_timeout"],
                "read": endpoint["read_timeout"],
                "total": endpoint["total_timeout"],
            }
            if endpoint
            else None
        ),
    )


def pool_report() -> PoolReport:
    """Every AI endpoint's pool (configured or seen in use) with its figures, from Redis."""
    client = get_redis()
    endpoints = _configured_pools()
    seen = {p.decode() if isinstance(p, bytes) else p for p in client.smembers(POOLS_KEY)}
    names = sorted(set(endpoints) | seen)
    counters, inflight, reset_at = _read_pools(client, names)
    live = _live_processes(client, {p for per in inflight for p in per})
    pools = tuple(
        _pool_figures(
            name,
            endpoints.get(name),
            counts,
            {p: max(0, n) for p, n in per_process.items() if p in live},
        )
        for name, counts, per_process in zip(names, counters, inflight, strict=True)
    )
    return PoolReport(pools=pools, counting_since=float(reset_at) if reset_at else None)


def pool_stats() -> dict[str, Any]:
    """`pool_report` as the monitoring API's JSON."""
    return pool_report().as_dict()


def pool_stats_reset() -> int:
    """Zero every pool's counters (calls in flight keep counting). Returns the pools reset."""
    client = get_redis()
    names = [p.decode() if isinstance(p, bytes) else p for p in client.smembers(POOLS_KEY)]
    pipe = client.pipeline(transaction=True)
    for name in names:
        pipe.hdel(counters_key(name), *COUNTER_FIELDS)
    pipe.set(RESET_KEY, time.time())
    pipe.execute()
    return len(names)


def pool_stats_prune() -> dict[str, int]:
    """Forget dead processes' in-flight counts and pools no endpoint uses any more."""
    client = get_redis()
    configured = {f"ai:{name}" for name in AIEndpoint.objects.values_list("name", flat=True)}
    names = sorted(p.decode() if isinstance(p, bytes) else p for p in client.smembers(POOLS_KEY))
    dead_fields = 0
    pools_removed = 0
    for name in names:
        per_process = {k: int(v) for k, v in _decode(client.hgetall(inflight_key(name))).items()}
        live = _live_processes(client, set(per_process))
        dead = [p for p in per_process if p not in live]
        if dead:
            dead_fields += client.hdel(inflight_key(name), *dead)
        busy = any(per_process[p] > 0 for p in live)
        if name.startswith("ai:") and name not in configured and not busy:
            pipe = client.pipeline(transaction=True)
            pipe.delete(counters_key(name), inflight_key(name))
            pipe.srem(POOLS_KEY, name)
            pipe.execute()
            pools_removed += 1
    return {"dead_process_fields": dead_fields, "unused_pools": pools_removed}

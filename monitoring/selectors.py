"""Read side of monitoring: dependency checks, queues, workers, turns, jobs and the health reports.

Every check returns a small dict with a `status` and never raises: a health report must render
whatever is down. Error texts are for staff only (the public reports carry statuses and counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import socket
import threading
import time
from typing import Any

import psutil
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count
from django.utils import timezone

from aiclients.errors import redact as redact_credentials
from config.redaction import redact
from conversations.models import Turn

_URL_USERINFO = re.compile(r"(//)[^/@\s]*@")


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a failure for staff."""
    text = _URL_USERINFO.sub(r"\1***@", redact_credentials(redact(str(exc))))
    return f"{type(exc).__name__}: {text}"[:300]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


# --- dependencies ------------------------------------------------------------------------------


def database_check(*, connection: BaseDatabaseWrapper | None = None) -> dict[str, Any]:
    conn = connection or connections["default"]
    start = time.perf_counter()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        # A broken connection must not poison the next request of this thread.
        with contextlib.suppress(Exception):
            conn.close()
        return {"status": "down", "error": describe_error(exc)}
    return {"status": "up", "latency_ms": _ms(start)}


_redis_clients: dict[str, redis.Redis] = {}
_redis_lock = threading.Lock()


def redis_client(url: str) -> redis.Redis:
    """A client with short timeouts for checks (the app's own client waits longer)."""
    client = _redis_clients.get(url)
    if client is None:
        with _redis_lock:
            client = _redis_clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=1, socket_timeout=2, max_connections=20
                )
                _redis_clients[url] = client
    return client


def redis_check(*, url: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        redis_client(url or settings.REDIS_URL).ping()
    except Exception as exc:
        return {"status": "down", "error": describe_error(exc)}
    return {"status": "up", "latency_ms": _ms(start)}


def channel_layer_check(*, timeout: float = 2.0) -> dict[str, Any]:
    """Send a message through the configured channel layer and receive it back.

    A fresh layer instance per check: the layer keeps connections per event loop, and this runs
    on whichever loop async_to_sync gives us.
    """
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    async def round_trip() -> float:
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                channel = await layer.new_channel()
                nonce = os.urandom(8).hex()
                await layer.send(channel, {"type": "monitoring.ping", "nonce": nonce})
                message = await layer.receive(channel)
                if message.get("nonce") != nonce:
                    raise RuntimeError("the channel layer returned another message")
            return _ms(start)
        finally:
            flush = getattr(layer, "flush", None)
            if flush is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(timeout):
                        await flush()

    try:
        round_trip_ms = async_to_sync(round_trip)()
    except TimeoutError:
        return {"status": "down", "error": f"no round trip within {timeout} s"}
    except Exception as exc:
        return {"status": "down", "error": describe_error(exc)}
    return {"status": "up", "round_trip_ms": round_trip_ms}


# --- Celery: broker, workers, queues ------------------------------------------------------------

_ping_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_ping_lock = threading.Lock()


_control_apps: dict[str, Any] = {}


def control_app():
    """A Celery app that talks to the broker settings.CELERY_BROKER_URL names (read at call time).

    Its own app, with the write/read URLs set, because Celery's broker_url prefers the
    CELERY_BROKER_URL environment variable over configuration, and remote control publishes
    through the app's producer pool whatever connection it is given.
    """
    from celery import Celery

    from config.celery import app

    url = settings.CELERY_BROKER_URL
    control = _control_apps.get(url)
    if control is None:
        control = Celery("monitoring-control", set_as_current=False)
        control.conf.update(
            broker_url=url,
            broker_write_url=url,
            broker_read_url=url,
            # Short socket timeouts: a health check must not hang on a half-dead broker.
            broker_transport_options={
                "socket_connect_timeout": 2,
                "socket_timeout": 5,
                **dict(app.conf.broker_transport_options or {}),
            },
            control_exchange=app.conf.control_exchange,
            accept_content=app.conf.accept_content,
        )
        _control_apps[url] = control
    return control


def broker_connection():
    return control_app().connection_for_write()


def broker_check() -> dict[str, Any]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {"status": "unknown", "error": "queue depth is read from Redis brokers only"}
    return redis_check(url=url)


def celery_workers(*, use_cache: bool = True) -> dict[str, Any]:
    """Which workers answer a ping (short timeout), cached HEALTH_CELERY_CACHE_SECONDS per process.

    The broker is checked first: control commands against a dead broker retry instead of failing.
    """
    url = settings.CELERY_BROKER_URL
    now = time.monotonic()
    cached = _ping_cache.get(url)
    if use_cache and cached and cached[0] > now:
        return {**cached[1], "cached": True}
    with _ping_lock:
        cached = _ping_cache.get(url)
        if use_cache and cached and cached[0] > time.monotonic():
            return {**cached[1], "cached": True}
        result = _ping_workers(previous=cached[1] if cached else None)
        _ping_cache[url] = (time.monotonic() + settings.HEALTH_CELERY_CACHE_SECONDS, result)
    return {**result, "cached": False}


def _ping_workers(previous: dict[str, Any] | None) -> dict[str, Any]:
    checked_at = timezone.now().isoformat()
    broker = broker_check()
    if broker["status"] == "down":
        return {
            "status": "down",
            "workers": [],
            "error": "the broker is unreachable: " + broker.get("error", ""),
            "checked_at": checked_at,
        }
    # Stop waiting as soon as as many workers answered as last time (else the full timeout).
    known = len(previous["workers"]) if previous and previous.get("workers") else None
    try:
        replies = control_app().control.ping(timeout=settings.HEALTH_CELERY_TIMEOUT, limit=known)
    except Exception as exc:
        return {
            "status": "down",
            "workers": [],
            "error": describe_error(exc),
            "checked_at": checked_at,
        }
    workers = sorted(name for reply in replies or [] for name in reply)
    result: dict[str, Any] = {
        "status": "up" if workers else "down",
        "workers": workers,
        "checked_at": checked_at,
    }
    if not workers:
        result["error"] = f"no worker answered a ping within {settings.HEALTH_CELERY_TIMEOUT} s"
    return result


def celery_workers_detail(workers: list[str], *, timeout: float | None = None) -> dict[str, Any]:
    """Per worker: pool, concurrency, active/reserved tasks and queues (inspect, short timeout)."""
    if not workers:
        return {}
    detail: dict[str, dict[str, Any]] = {name: {"name": name} for name in workers}
    inspect = control_app().control.inspect(
        destination=workers, timeout=timeout or settings.HEALTH_CELERY_TIMEOUT, limit=len(workers)
    )
    answers = {}
    for what in ("stats", "active", "reserved", "active_queues"):
        try:
            answers[what] = getattr(inspect, what)() or {}
        except Exception:
            answers[what] = {}
    for what, replies in answers.items():
        for name, value in replies.items():
            row = detail.setdefault(name, {"name": name})
            if what == "stats":
                pool = value.get("pool") or {}
                row["pool"] = pool.get("implementation", "").rsplit(":", 1)[-1]
                row["concurrency"] = pool.get("max-concurrency")
                row["pid"] = value.get("pid")
                row["uptime_seconds"] = value.get("uptime")
                row["processed"] = sum((value.get("total") or {}).values())
            elif what in ("active", "reserved"):
                row[what] = len(value or [])
            else:
                row["queues"] = sorted(q.get("name", "") for q in value or [])
    return detail


# kombu's Redis transport keeps a queue in a list (LPUSH, BRPOP: the oldest is the last element)
# plus one list per priority step, named queue + "\x06\x16" + step.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def _queue_keys(queue: str) -> list[str]:
    prefix = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("global_keyprefix", "")
    return [
        f"{prefix}{queue}" if step == 0 else f"{prefix}{queue}{PRIORITY_SEPARATOR}{step}"
        for step in PRIORITY_STEPS
    ]


def _enqueued_at(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
        value = headers.get("enqueued_at")
        if value is None:
            value = (message.get("properties") or {}).get("enqueued_at")
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def queue_stats() -> dict[str, Any]:
    """Depth and age of the oldest waiting task per monitored queue (Redis broker)."""
    queues = list(settings.MONITORED_QUEUES)
    broker = broker_check()
    if broker["status"] != "up":
        return {q: {"depth": None, "oldest_waiting_seconds": None, "stuck": False} for q in queues}
    client = redis_client(settings.CELERY_BROKER_URL)
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in _queue_keys(queue):
            pipe.llen(key)
            pipe.lindex(key, -1)
    try:
        replies = pipe.execute()
    except redis.RedisError:
        return {q: {"depth": None, "oldest_waiting_seconds": None, "stuck": False} for q in queues}
    now = time.time()
    result: dict[str, Any] = {}
    per_queue = 2 * len(PRIORITY_STEPS)
    for index, queue in enumerate(queues):
        chunk = replies[index * per_queue : (index + 1) * per_queue]
        depth = sum(int(n) for n in chunk[0::2])
        stamps = [t for t in (_enqueued_at(raw) for raw in chunk[1::2]) if t is not None]
        oldest = round(max(0.0, now - min(stamps)), 1) if stamps else None
        result[queue] = {
            "depth": depth,
            "oldest_waiting_seconds": oldest,
            "stuck": oldest is not None and oldest > settings.QUEUE_STUCK_SECONDS,
        }
    return result


# --- this process and the turns -------------------------------------------------------------------


def turn_counts() -> dict[str, int] | None:
    """Unfinished turns by status (served by the partial index turn_unfinished)."""
    try:
        rows = (
            Turn.objects.filter(status__in=[Turn.Status.PENDING, Turn.Status.RUNNING])
            .values_list("status")
            .order_by()
            .annotate(n=Count("id"))
        )
        counts = dict(rows)
    except DatabaseError:
        return None
    return {"pending": counts.get("pending", 0), "running": counts.get("running", 0)}


def memory_state() -> dict[str, Any]:
    process = psutil.Process()
    system = psutil.virtual_memory()
    return {
        "rss_bytes": process.memory_info().rss,
        "system_total_bytes": system.total,
        "system_available_bytes": system.available,
        "system_used_percent": system.percent,
    }


def uptime_seconds() -> float:
    return round(time.time() - psutil.Process().create_time(), 1)


def system_state(*, with_streams: bool = True) -> dict[str, Any]:
    """What an error log entry keeps of the moment: memory, uptime, active streams."""
    state: dict[str, Any] = {
        "process": process_name(),
        "rss_bytes": psutil.Process().memory_info().rss,
        "uptime_seconds": uptime_seconds(),
    }
    if with_streams:
        counts = turn_counts()
        state["active_streams"] = counts["running"] if counts else None
    return state


def open_connections() -> dict[str, Any]:
    result: dict[str, Any] = {}
    try:
        result["process_tcp"] = len(psutil.Process().net_connections(kind="tcp"))
    except (psutil.Error, OSError):
        result["process_tcp"] = None
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            result["database"] = cursor.fetchone()[0]
    except Exception:
        result["database"] = None
    return result


# --- scheduled jobs -----------------------------------------------------------------------------


def job_runs_latest() -> dict[str, dict[str, Any]]:
    """The last run of every job, by job name (DISTINCT ON served by jobrun_job_recent)."""
    from monitoring.models import JobRun

    try:
        runs = list(JobRun.objects.order_by("job", "-started_at").distinct("job"))
    except DatabaseError:
        return {}
    return {run.job: job_run_dict(run) for run in runs}


def job_run_dict(run) -> dict[str, Any]:
    return {
        "job": run.job,
        "outcome": run.outcome,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
        "rows_affected": run.rows_affected,
        "message": run.message,
    }


def maintenance_report() -> dict[str, Any]:
    """Per scheduled job: its schedule, whether it is enabled and its last run."""
    from django_celery_beat.models import PeriodicTask

    latest = job_runs_latest()
    jobs: dict[str, Any] = {}
    try:
        tasks = list(PeriodicTask.objects.select_related("interval", "crontab").order_by("name"))
    except DatabaseError:
        tasks = []
    for task in tasks:
        if task.name.startswith("celery."):
            continue
        schedule = task.interval or task.crontab or task.solar or task.clocked
        jobs[task.name] = {
            "task": task.task,
            "enabled": task.enabled,
            "schedule": str(schedule) if schedule else None,
            "last_run": latest.pop(task.name, None),
        }
    for name, run in latest.items():
        jobs[name] = {"task": None, "enabled": None, "schedule": None, "last_run": run}
    return jobs


# --- the reports ----------------------------------------------------------------------------------


def _word(check: dict[str, Any]) -> str:
    return "connected" if check["status"] == "up" else "disconnected"


def conversation_health_public() -> tuple[dict[str, Any], bool]:
    """GET /api/conversation-health (seed 000's shape): statuses and counts only."""
    database = database_check()
    redis_state = redis_check()
    counts = turn_counts() if database["status"] == "up" else None
    healthy = database["status"] == "up" and redis_state["status"] == "up"
    return (
        {
            "status": "healthy" if healthy else "degraded",
            "database": _word(database),
            "redis": _word(redis_state),
            "active_streams": counts["running"] if counts else None,
            "timestamp": timezone.now().isoformat(),
        },
        healthy,
    )


def health_root() -> tuple[dict[str, Any], bool]:
    """GET /health (seed 003's shape): dependencies, uptime, memory, open connections."""
    database = database_check()
    redis_state = redis_check()
    celery = celery_workers()
    healthy = all(c["status"] == "up" for c in (database, redis_state, celery))
    return (
        {
            "status": "healthy" if healthy else "degraded",
            "timestamp": timezone.now().isoformat(),
            "dependencies": {
                "database": {"status": _word(database), "latency_ms": database.get("latency_ms")},
                "redis": {
                    "status": _word(redis_state),
                    "latency_ms": redis_state.get("latency_ms"),
                },
                "celery": {"status": celery["status"], "workers": len(celery["workers"])},
            },
            "uptime": uptime_seconds(),
            "memory": memory_state(),
            "connections": open_connections() if database["status"] == "up" else {},
        },
        healthy,
    )


def conversation_health_full() -> tuple[dict[str, Any], bool]:
    """GET /api/monitoring/conversation-health: everything an operator needs on one page."""
    database = database_check()
    redis_state = redis_check()
    channel_layer = channel_layer_check()
    broker = broker_check()
    celery = celery_workers()
    queues = queue_stats()
    counts = turn_counts() if database["status"] == "up" else None
    maintenance = maintenance_report() if database["status"] == "up" else {}

    problems = [
        f"{name}: {check.get('error', 'down')}"
        for name, check in (
            ("database", database),
            ("redis", redis_state),
            ("channel_layer", channel_layer),
            ("broker", broker),
            ("celery", celery),
        )
        if check["status"] == "down"
    ]
    problems += [
        f"queue {name}: the oldest task has waited {q['oldest_waiting_seconds']} s"
        for name, q in queues.items()
        if q["stuck"]
    ]
    warnings = [
        f"job {name}: last run failed ({job['last_run']['message'][:200]})"
        for name, job in maintenance.items()
        if job["last_run"] and job["last_run"]["outcome"] == "failed"
    ]
    healthy = not problems
    return (
        {
            "status": "healthy" if healthy else "degraded",
            "timestamp": timezone.now().isoformat(),
            "problems": problems,
            "warnings": warnings,
            "database": database,
            "redis": redis_state,
            "channel_layer": channel_layer,
            "broker": broker,
            "celery": celery,
            "queues": queues,
            "active_streams": counts["running"] if counts else None,
            "turns": counts,
            "memory": memory_state(),
            "uptime": uptime_seconds(),
            "process": process_name(),
            "maintenance": maintenance,
        },
        healthy,
    )


def error_counts(*, since: dt.datetime | None = None) -> dict[str, int]:
    """Handled failures per category (all time, or since a moment)."""
    from monitoring.models import ErrorLog

    qs = ErrorLog.objects.all()
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    return dict(qs.values_list("category").order_by().annotate(n=Count("id")))


def running_turns(*, limit: int = 50) -> list[dict[str, Any]]:
    now = timezone.now()
    rows = (
        Turn.objects.filter(status=Turn.Status.RUNNING)
        .select_related("conversation__chatbot")
        .order_by("started_at")[:limit]
    )
    return [
        {
            "id": str(turn.pk),
            "chatbot": turn.conversation.chatbot.public_id,
            "worker": turn.worker,
            "started_at": turn.started_at,
            "running_seconds": round((now - turn.started_at).total_seconds())
            if turn.started_at
            else None,
            "heartbeat_age_seconds": round((now - turn.heartbeat_at).total_seconds())
            if turn.heartbeat_at
            else None,
        }
        for turn in rows
    ]

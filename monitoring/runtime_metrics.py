"""HTTP request, WebSocket and Celery task metrics for GET /metrics (issue #24 item 3).

Why not django-prometheus: it counts in each process's memory, and Prometheus' multi-process
mode then needs one shared directory for every process. Our /metrics is answered by whichever of
the N Daphne processes the kernel picks and must speak for all of them, workers included, across
containers too — the rule of monitoring/metrics.py: figures live in Redis. So each process adds
up its figures in memory (no I/O on the request path) and a daemon thread adds them to Redis
hashes every FLUSH_SECONDS in one pipeline; the collector below reads them at scrape time. A
process that dies loses at most its last second of figures.

Families (labels): chatbot_http_requests_total (route, method, status_class),
chatbot_http_request_duration_seconds (route; until the response's headers, so an SSE stream
counts its start, not its length), chatbot_websocket_connections_total (route, outcome:
accepted / rejected by the application / refused over a socket cap),
chatbot_websocket_session_duration_seconds (route), chatbot_celery_tasks_total (task, outcome),
chatbot_celery_task_duration_seconds (task).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from config.redis import get_redis
from config.socket_limits import register_socket_observer
from config.sync_async import SyncAsyncMiddleware

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
KEY = "cb:metrics:{family}:{part}"
SEP = "\x1f"

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SESSION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


class Family:
    """One labelled counter plus a histogram of durations with fewer labels."""

    def __init__(
        self,
        name: str,
        help_count: str,
        help_duration: str,
        labels: Sequence[str],
        duration_labels: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.help_count = help_count
        self.help_duration = help_duration
        self.labels = list(labels)
        self.duration_labels = list(duration_labels)
        self.buckets = tuple(buckets)


HTTP = Family(
    "http",
    "HTTP requests answered, by route, method and status class.",
    "Seconds until the response (its headers) was ready, by route.",
    ["route", "method", "status_class"],
    ["route"],
    HTTP_BUCKETS,
)
WEBSOCKET = Family(
    "websocket",
    "WebSocket connections, by route and outcome.",
    "Seconds WebSocket connections stayed open, by route.",
    ["route", "outcome"],
    ["route"],
    SESSION_BUCKETS,
)
TASK = Family(
    "celery_task",
    "Celery tasks run, by task and outcome.",
    "Seconds Celery tasks ran, by task.",
    ["task", "outcome"],
    ["task"],
    TASK_BUCKETS,
)
FAMILIES = (HTTP, WEBSOCKET, TASK)
# Prometheus names: chatbot_http_requests_total and chatbot_http_request_duration_seconds, ...
NAMES = {
    "http": ("chatbot_http_requests", "chatbot_http_request_duration_seconds"),
    "websocket": ("chatbot_websocket_connections", "chatbot_websocket_session_duration_seconds"),
    "celery_task": ("chatbot_celery_tasks", "chatbot_celery_task_duration_seconds"),
}


class Recorder:
    """This process's figures since the last flush, and the thread that flushes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.floats: Counter[str] = Counter()
        self.pid = 0
        self.thread: threading.Thread | None = None

    def record(
        self, family: Family, labels: Sequence[str], duration_labels: Sequence[str], seconds: float
    ) -> None:
        key = SEP.join(labels)
        dkey = SEP.join(duration_labels)
        le = next((str(b) for b in family.buckets if seconds <= b), "+Inf")
        with self.lock:
            self.counts[f"{family.name}:count:{key}"] += 1
            self.counts[f"{family.name}:bucket:{dkey}{SEP}{le}"] += 1
            self.floats[f"{family.name}:sum:{dkey}"] += seconds
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self.pid == pid and self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.pid == pid and self.thread is not None and self.thread.is_alive():
                return
            self.pid = pid  # a forked child (Celery prefork) starts its own thread
            self.thread = threading.Thread(
                target=self._loop, name="runtime-metrics-flush", daemon=True
            )
            self.thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:
                # Redis away: the figures are kept and go with the next flush.
                logger.debug("runtime metrics flush failed", exc_info=True)

    def flush(self) -> None:
        with self.lock:
            counts, floats = self.counts, self.floats
            self.counts, self.floats = Counter(), Counter()
        if not counts and not floats:
            return
        try:
            pipe = get_redis().pipeline(transaction=False)
            for key, value in counts.items():
                family, part, field = key.split(":", 2)
                pipe.hincrby(KEY.format(family=family, part=part), field, value)
            for key, value in floats.items():
                family, part, field = key.split(":", 2)
                pipe.hincrbyfloat(KEY.format(family=family, part=part), field, value)
            pipe.execute()
        except Exception:
            with self.lock:  # put them back for the next try
                self.counts.update(counts)
                self.floats.update(floats)
            raise


RECORDER = Recorder()


def runtime_metrics_flush() -> None:
    """Write this process's figures to Redis now (tests; process exit)."""
    RECORDER.flush()


@atexit.register
def _flush_at_exit() -> None:
    with contextlib.suppress(Exception):  # Redis may be gone before us
        RECORDER.flush()


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


# --- HTTP -----------------------------------------------------------------------------------------


def _route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"  # 404s of unknown paths: one label, not one per path tried
    return "/" + (match.route or match.view_name or "unnamed")


class RequestMetricsMiddleware(SyncAsyncMiddleware):
    """Times each request and counts it by route (the URL pattern, never the raw path)."""

    def _record(self, request, status: int, started: float) -> None:
        route = _route_of(request)
        RECORDER.record(
            HTTP,
            [route, request.method or "", status_class(status)],
            [route],
            time.perf_counter() - started,
        )

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            self._record(request, status, started)

    async def __acall__(self, request):
        started = time.perf_counter()
        status = 500
        try:
            response = await self.get_response(request)
            status = response.status_code
            return response
        finally:
            self._record(request, status, started)


# --- WebSocket (observed in config.socket_limits.SocketLimitMiddleware) ---------------------------

_ID_SEGMENT = re.compile(r"^([0-9a-fA-F-]{8,}|\d+|[A-Za-z0-9_-]{20,})$")


def websocket_route(path: str) -> str:
    """A path with its ids replaced (`/ws/conversations/{id}/`), at most three segments."""
    segments = [s for s in path.split("/") if s][:3]
    return "/" + "/".join("{id}" if _ID_SEGMENT.match(s) else s[:40] for s in segments) + "/"


def websocket_record(*, path: str, outcome: str, seconds: float) -> None:
    route = websocket_route(path)
    RECORDER.record(WEBSOCKET, [route, outcome], [route], seconds)


# --- Celery tasks ---------------------------------------------------------------------------------

_task_started: dict[str, float] = {}


def on_task_prerun(task_id=None, task=None, **kwargs) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


def on_task_postrun(task_id=None, task=None, state=None, **kwargs) -> None:
    started = _task_started.pop(task_id, None) if task_id else None
    if started is None or task is None:
        return
    outcome = (state or "unknown").lower()
    RECORDER.record(TASK, [task.name, outcome], [task.name], time.perf_counter() - started)


def connect() -> None:
    from celery import signals

    register_socket_observer("monitoring", websocket_record)
    signals.task_prerun.connect(
        on_task_prerun, dispatch_uid="monitoring.runtime_metrics.prerun", weak=False
    )
    signals.task_postrun.connect(
        on_task_postrun, dispatch_uid="monitoring.runtime_metrics.postrun", weak=False
    )


# --- the collector's part -------------------------------------------------------------------------


def _hash(client, family: str, part: str, cast) -> dict[str, float]:
    return {
        (k.decode() if isinstance(k, bytes) else k): cast(v)
        for k, v in client.hgetall(KEY.format(family=family, part=part)).items()
    }


def collect() -> Iterator[Metric]:
    """The families above, summed over every process, from Redis."""
    client = get_redis()
    for family in FAMILIES:
        count_name, duration_name = NAMES[family.name]
        counter = CounterMetricFamily(count_name, family.help_count, labels=family.labels)
        for key, value in sorted(_hash(client, family.name, "count", int).items()):
            labels = key.split(SEP)
            if len(labels) == len(family.labels):
                counter.add_metric(labels, value)
        yield counter
        histogram = HistogramMetricFamily(
            duration_name, family.help_duration, labels=family.duration_labels
        )
        buckets: dict[str, dict[str, int]] = {}
        for key, value in _hash(client, family.name, "bucket", int).items():
            *labels, le = key.split(SEP)
            buckets.setdefault(SEP.join(labels), {})[le] = value
        sums = _hash(client, family.name, "sum", float)
        for key in sorted(buckets):
            labels = key.split(SEP)
            if len(labels) != len(family.duration_labels):
                continue
            running, cumulative = 0, []
            for bound in (*family.buckets, "+Inf"):
                le = str(bound)
                running += buckets[key].get(le, 0)
                cumulative.append((le if le != "+Inf" else "+Inf", running))
            histogram.add_metric(labels, cumulative, sum_value=sums.get(key, 0.0))
        yield histogram

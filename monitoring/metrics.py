"""GET /metrics: the monitoring figures in Prometheus' text format, for all processes at once.

Nothing is counted in this process's memory: every figure is read at scrape time from Redis
(pools, caches, counters), the broker (queues), Celery (workers) and PostgreSQL (turns, jobs),
so any web process gives the same answer. Access: a staff session, or `Authorization: Bearer
<METRICS_TOKEN>` when that setting is set (for Prometheus).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from accounts import access
from chatbots.selectors import cache_stats
from config.errors import ErrorCode, error_json
from config.redis import get_redis
from monitoring import runtime_metrics, selectors
from monitoring.error_codes import MonitoringErrorCode
from tools import metrics as tool_metrics

logger = logging.getLogger(__name__)


def _int_hash(key: str) -> dict[str, int]:
    return {
        (k.decode() if isinstance(k, bytes) else k): int(v)
        for k, v in get_redis().hgetall(key).items()
    }


class MonitoringCollector:
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "chatbot_dependency_up", "1 when the dependency answers.", labels=["dependency"]
        )
        database = selectors.database_check()["status"] == "up"
        redis_up = selectors.redis_check()["status"] == "up"
        celery = selectors.celery_workers()
        up.add_metric(["database"], int(database))
        up.add_metric(["redis"], int(redis_up))
        up.add_metric(["broker"], int(selectors.broker_check()["status"] == "up"))
        up.add_metric(["celery"], int(celery["status"] == "up"))
        yield up
        workers = GaugeMetricFamily("chatbot_celery_workers", "Workers answering a ping.")
        workers.add_metric([], len(celery["workers"]))
        yield workers
        yield from self._queues()
        if redis_up and database:
            yield from self._pools()
        if redis_up:
            yield from self._caches()
            yield from self._counters()
            yield from runtime_metrics.collect()  # HTTP, WebSocket and Celery task figures
            yield from tool_metrics.collect()  # calls per tool and outcome (docs/tools.md)
        if database:
            yield from self._turns()
            yield from self._jobs()

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("chatbot_queue_depth", "Tasks waiting.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "chatbot_queue_oldest_waiting_seconds",
            "How long the oldest waiting task has waited.",
            labels=["queue"],
        )
        for name, queue in selectors.queue_stats().items():
            if queue["depth"] is not None:
                depth.add_metric([name], queue["depth"])
            oldest.add_metric([name], queue["oldest_waiting_seconds"] or 0)
        yield depth
        yield oldest

    def _pools(self) -> Iterator[Metric]:
        from monitoring.pool_stats import pool_report

        labels = ["pool", "kind"]
        gauges = {
            key: GaugeMetricFamily(f"chatbot_pool_{key}", help_text, labels=labels)
            for key, help_text in (
                ("limit", "Connections allowed (per process x processes)."),
                ("in_use", "Connections in use now."),
                ("waiting", "Calls waiting for a free connection now."),
                ("processes", "Live processes using the pool."),
            )
        }
        counters = {
            key: CounterMetricFamily(f"chatbot_pool_{key}", help_text, labels=labels)
            for key, help_text in (
                ("requests", "Calls made."),
                ("successes", "Calls that succeeded."),
                ("failures", "Calls that failed."),
                ("timeouts", "Calls that timed out."),
                ("retries", "Retries before a first token."),
            )
        }
        wait = CounterMetricFamily(
            "chatbot_pool_wait_seconds", "Time spent waiting for a connection.", labels=labels
        )
        for pool in pool_report().pools:
            values = [pool.name, pool.kind]
            for key, family in gauges.items():
                family.add_metric(values, getattr(pool, key))
            for key, counter in counters.items():
                counter.add_metric(values, getattr(pool, key))
            wait.add_metric(values, (pool.average_wait_seconds or 0) * pool.requests)
        yield from gauges.values()
        yield from counters.values()
        yield wait

    def _caches(self) -> Iterator[Metric]:
        hits = CounterMetricFamily("chatbot_cache_hits", "Cache hits.", labels=["cache"])
        misses = CounterMetricFamily("chatbot_cache_misses", "Cache misses.", labels=["cache"])
        size = GaugeMetricFamily("chatbot_cache_entries", "Entries cached.", labels=["cache"])
        for name, figures in cache_stats().items():
            hits.add_metric([name], figures["hits"])
            misses.add_metric([name], figures["misses"])
            size.add_metric([name], figures["size"])
        yield hits
        yield misses
        yield size

    def _counters(self) -> Iterator[Metric]:
        from monitoring.services import ERRORS_KEY, TURNS_FINISHED_KEY

        errors = CounterMetricFamily(
            "chatbot_errors", "Handled failures recorded, by category.", labels=["category"]
        )
        for category, count in sorted(_int_hash(ERRORS_KEY).items()):
            errors.add_metric([category], count)
        yield errors
        finished = CounterMetricFamily(
            "chatbot_turns_finished", "Turns finished, by final status.", labels=["status"]
        )
        for status, count in sorted(_int_hash(TURNS_FINISHED_KEY).items()):
            finished.add_metric([status], count)
        yield finished

    def _turns(self) -> Iterator[Metric]:
        counts = selectors.turn_counts()
        if counts is None:
            return
        turns = GaugeMetricFamily("chatbot_turns", "Unfinished turns by status.", labels=["status"])
        for status, count in counts.items():
            turns.add_metric([status], count)
        yield turns

    def _jobs(self) -> Iterator[Metric]:
        when = GaugeMetricFamily(
            "chatbot_job_last_run_timestamp_seconds", "Start of the last run.", labels=["job"]
        )
        ok = GaugeMetricFamily(
            "chatbot_job_last_run_success", "1 when the last run succeeded.", labels=["job"]
        )
        rows = GaugeMetricFamily(
            "chatbot_job_last_run_rows", "Rows affected by the last run.", labels=["job"]
        )
        from monitoring.models import JobRun

        for run in JobRun.objects.order_by("job", "-started_at").distinct("job"):
            when.add_metric([run.job], run.started_at.timestamp())
            ok.add_metric([run.job], int(run.outcome in (JobRun.Outcome.OK, "skipped")))
            rows.add_metric([run.job], run.rows_affected or 0)
        yield when
        yield ok
        yield rows


def _authorized(request: HttpRequest) -> tuple[bool, int]:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode()):
            return True, 200
        return False, 401
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # Every shop's figures in one page: platform operators only (accounts.access).
        return access.is_operator(user), 403
    return False, 401


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    allowed, status = _authorized(request)
    if not allowed:
        if status == 403:
            return error_json(ErrorCode.PERMISSION_DENIED, "Platform operators only.")
        # 401: the registry's status of both codes.
        challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
        if request.headers.get("Authorization"):
            return error_json(
                MonitoringErrorCode.METRICS_TOKEN_INVALID,
                "The metrics token is not valid.",
                headers=challenge,
            )
        return error_json(
            ErrorCode.NOT_AUTHENTICATED,
            "Log in as staff, or send Authorization: Bearer <METRICS_TOKEN>.",
            headers=challenge,
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitoringCollector())
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response

"""Scheduled maintenance jobs and the frame every job runs in.

A job runs under a PostgreSQL advisory lock named after its task, so a second run started while
one is in progress (two beats, a manual run, a re-delivered task) records `skipped` and touches
nothing. Deletes are bounded batches (`DELETE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP
LOCKED)`), each its own short transaction, so a big backlog never holds long locks, and a job
that stops half-way simply continues next time. Every run is stored as a JobRun.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent
from chatbots.selectors import CONFIG_KEY, TEMPLATE_KEYS
from config.redis import get_redis
from conversations.models import StreamEvent, Turn
from conversations.streaming import event_redis_all
from monitoring.models import ErrorLog, JobRun
from monitoring.selectors import describe_error, process_name

logger = logging.getLogger(__name__)


@dataclass
class JobProgress:
    """Filled in by a job while it works, so a failure still reports what was done."""

    rows: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    outcome: str = JobRun.Outcome.OK


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_try_advisory_lock."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def job_execute(
    *, job: str, task: str, work: Callable[[JobProgress], None], lock_name: str | None = None
) -> JobRun:
    """Run `work` once under the job's advisory lock and store the run. Re-raises failures
    (after storing them) so Celery marks the task failed and the error log records it."""
    key = advisory_key(f"monitoring-job:{lock_name or task or job}")
    run = JobRun.objects.create(job=job, task=task, worker=process_name()[:200])
    started = time.perf_counter()
    progress = JobProgress()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        locked = cursor.fetchone()[0]
    failure: BaseException | None = None
    try:
        if not locked:
            progress.outcome = JobRun.Outcome.SKIPPED
            progress.message = "Another run of this job was in progress; this one did nothing."
        else:
            try:
                work(progress)
            except Exception as exc:
                failure = exc
                progress.outcome = JobRun.Outcome.FAILED
                progress.message = describe_error(exc)
                logger.exception("maintenance job %s failed", job)
    finally:
        if locked:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except Exception:
                # The lock dies with the session; a broken connection is closed and retried.
                connection.close()
        run.outcome = progress.outcome
        run.rows_affected = progress.rows
        run.details = progress.details
        run.message = progress.message[:2000]
        run.finished_at = timezone.now()
        run.duration_ms = round((time.perf_counter() - started) * 1000)
        run.save(
            update_fields=[
                "outcome",
                "rows_affected",
                "details",
                "message",
                "finished_at",
                "duration_ms",
            ]
        )
    if failure is not None:
        raise failure
    return run


def _delete_batches(
    sql: str, params: list[Any], batch: int, progress: JobProgress, counter: str
) -> int:
    """Run a bounded `DELETE … LIMIT %s` until it deletes less than a batch; returns the total.

    Progress is counted per batch, so a failure half-way still reports what was deleted.
    """
    total = 0
    progress.details.setdefault(counter, 0)
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, batch])
            deleted = cursor.rowcount
        total += deleted
        progress.rows += deleted
        progress.details[counter] += deleted
        if deleted < batch:
            return total


def _delete_created_before(
    table: str, cutoff: dt.datetime, batch: int, progress: JobProgress, counter: str
) -> int:
    """Delete a log table's rows created before `cutoff`, in batches (the error log and the
    audit log: each has an index on created_at that serves the range scan)."""
    return _delete_batches(
        f"""DELETE FROM {table} WHERE id IN (
                SELECT id FROM {table} WHERE created_at < %s LIMIT %s FOR UPDATE SKIP LOCKED)""",
        [cutoff],
        batch,
        progress,
        counter,
    )


# --- stream events of finished turns -------------------------------------------------------------

STREAM_EVENTS_JOB = "stream-events-retention"


def stream_events_prune(progress: JobProgress) -> None:
    """Delete the event rows of turns finished more than STREAM_EVENTS_RETENTION_DAYS ago.

    The turns and their messages stay; a resume into such a turn gets RESUME_POINT_GONE. Only
    turns finished since the last successful run's cutoff are scanned (with an hour of margin),
    so the job does not rescan years of already-pruned turns every hour.
    """
    cutoff = timezone.now() - dt.timedelta(days=settings.STREAM_EVENTS_RETENTION_DAYS)
    lower = None
    previous = (
        JobRun.objects.filter(job=STREAM_EVENTS_JOB, outcome=JobRun.Outcome.OK)
        .order_by("-started_at")
        .values_list("details", flat=True)
        .first()
    )
    if previous and previous.get("cutoff"):
        lower = dt.datetime.fromisoformat(previous["cutoff"]) - dt.timedelta(hours=1)
    progress.details.update(
        cutoff=cutoff.isoformat(),
        scanned_from=lower.isoformat() if lower else None,
        retention_days=settings.STREAM_EVENTS_RETENTION_DAYS,
    )
    events, turns = StreamEvent._meta.db_table, Turn._meta.db_table
    window = "AND t.finished_at >= %s" if lower else ""
    # The turn_finished_at index finds the turns, unique_stream_event_seq (turn, seq) their rows.
    sql = f"""
        DELETE FROM {events} WHERE id IN (
            SELECT e.id FROM {events} e JOIN {turns} t ON t.id = e.turn_id
            WHERE t.finished_at < %s {window}
              AND t.status IN ('completed', 'failed', 'cancelled')
            LIMIT %s
            FOR UPDATE OF e SKIP LOCKED
        )
    """
    params: list[Any] = [cutoff] + ([lower] if lower else [])
    _delete_batches(sql, params, settings.MAINTENANCE_BATCH_SIZE, progress, "stream_events_deleted")


# --- error log and job runs ------------------------------------------------------------------------

ERROR_LOGS_JOB = "error-log-retention"


def error_logs_prune(progress: JobProgress) -> None:
    """Delete error log entries older than ERROR_LOG_RETENTION_DAYS, job runs older than
    JOB_RUN_RETENTION_DAYS (the last run of every job always stays) and audit events older than
    AUDIT_LOG_RETENTION_DAYS."""
    now = timezone.now()
    error_cutoff = now - dt.timedelta(days=settings.ERROR_LOG_RETENTION_DAYS)
    run_cutoff = now - dt.timedelta(days=settings.JOB_RUN_RETENTION_DAYS)
    logs, runs = ErrorLog._meta.db_table, JobRun._meta.db_table
    batch = settings.MAINTENANCE_BATCH_SIZE
    # errorlog_created serves the range scan.
    _delete_created_before(logs, error_cutoff, batch, progress, "error_logs_deleted")
    # jobrun_started serves the range scan, jobrun_job_recent the "last run per job" exclusion.
    _delete_batches(
        f"""DELETE FROM {runs} WHERE id IN (
                SELECT id FROM {runs} WHERE started_at < %s
                  AND id NOT IN (SELECT DISTINCT ON (job) id FROM {runs}
                                 ORDER BY job, started_at DESC)
                LIMIT %s FOR UPDATE SKIP LOCKED)""",
        [run_cutoff],
        batch,
        progress,
        "job_runs_deleted",
    )
    audit_cutoff = now - dt.timedelta(days=settings.AUDIT_LOG_RETENTION_DAYS)
    events = AuditEvent._meta.db_table
    # audit_created serves the range scan.
    _delete_created_before(events, audit_cutoff, batch, progress, "audit_events_deleted")
    progress.details.update(
        error_log_cutoff=error_cutoff.isoformat(),
        job_run_cutoff=run_cutoff.isoformat(),
        audit_log_cutoff=audit_cutoff.isoformat(),
    )


# --- Redis caches and statistics -------------------------------------------------------------------

CACHE_CLEANUP_JOB = "cache-cleanup"


def _keys_without_ttl(client, pattern: str) -> list[bytes]:
    found: list[bytes] = []
    batch: list[bytes] = []

    def check(keys: list[bytes]) -> None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        found.extend(k for k, ttl in zip(keys, pipe.execute(), strict=True) if ttl == -1)

    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            check(batch)
            batch = []
    if batch:
        check(batch)
    return found


def cache_cleanup(progress: JobProgress) -> None:
    """Clean what Redis does not expire by itself.

    Redis already drops cache entries when their TTL passes. What it cannot fix: configuration or
    template cache entries that lost their TTL (a manual SET, a failed SET EX) and would otherwise
    never see an admin edit; turn event streams without a TTL (they would live forever);
    in-flight counts of worker processes that died; statistics of pools whose AI endpoint no
    longer exists.
    """
    from monitoring.pool_stats import pool_stats_prune

    client = get_redis()
    stale_cache = []
    for pattern in (CONFIG_KEY.format("*"), TEMPLATE_KEYS):
        stale_cache += _keys_without_ttl(client, pattern)
    for start in range(0, len(stale_cache), 500):
        client.delete(*stale_cache[start : start + 500])

    streams = []
    for events_client in event_redis_all():  # each server holding turns' logs
        found = _keys_without_ttl(events_client, "cb:turn:*:events")
        if found:
            pipe = events_client.pipeline(transaction=False)
            for key in found:
                pipe.expire(key, settings.STREAM_REDIS_TTL_SECONDS)
            pipe.execute()
        streams += found
    pruned = pool_stats_prune()
    progress.details.update(
        cache_entries_without_ttl_deleted=len(stale_cache),
        event_streams_given_ttl=len(streams),
        **pruned,
    )
    progress.rows = len(stale_cache) + len(streams) + sum(pruned.values())


# --- turn metrics (owned by analytics) -------------------------------------------------------------

TURN_METRICS_JOB = "turn-metrics-cleanup"


def turn_metrics_cleanup(progress: JobProgress) -> None:
    """Call analytics.services.turn_metrics_cleanup() when analytics provides it."""
    analytics_services: types.ModuleType | None
    try:
        from analytics import services as analytics_services
    except ImportError:
        analytics_services = None
    cleanup = getattr(analytics_services, "turn_metrics_cleanup", None)
    if cleanup is None:
        progress.outcome = JobRun.Outcome.SKIPPED
        progress.message = (
            "analytics.services.turn_metrics_cleanup() does not exist in this installation; "
            "nothing was cleaned."
        )
        return
    result = cleanup()
    if isinstance(result, bool):
        result = int(result)
    if isinstance(result, int):
        progress.rows = result
    elif isinstance(result, dict):
        progress.rows = sum(v for v in result.values() if isinstance(v, int))
        progress.details["result"] = {k: v for k, v in result.items() if isinstance(v, int | str)}

"""Scheduled maintenance: each job deletes exactly what its retention says, runs are recorded,
two runs at once are safe, and the beat schedules live in the database."""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.errors import ApiError
from config.redis import get_redis
from conversations.models import StreamEvent, Turn
from conversations.selectors import stream_events_after
from monitoring import maintenance, tasks
from monitoring.maintenance import JobProgress, advisory_key, job_execute
from monitoring.models import ErrorLog, JobRun
from monitoring.schedules import schedules_ensure
from monitoring.tests.factories import create_events, create_turn

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)


def days_ago(days: int, shift: dt.timedelta = dt.timedelta()) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days) + shift


@pytest.fixture
def retention(settings):
    settings.STREAM_EVENTS_RETENTION_DAYS = 30
    settings.ERROR_LOG_RETENTION_DAYS = 30
    settings.JOB_RUN_RETENTION_DAYS = 14
    settings.MAINTENANCE_BATCH_SIZE = 3  # several batches per job
    return settings


def finished_turn(bot, finished_at, events: int, status=Turn.Status.COMPLETED) -> Turn:
    turn = create_turn(chatbot=bot, status=status)
    Turn.objects.filter(pk=turn.pk).update(finished_at=finished_at)
    create_events(turn, events)
    turn.refresh_from_db()
    return turn


# --- stream events ------------------------------------------------------------------------------


def test_stream_events_of_turns_finished_before_the_retention_go_and_nothing_else(
    retention, make_chatbot
):
    bot = make_chatbot()
    old = finished_turn(bot, days_ago(30, -MINUTE), events=7)
    old_failed = finished_turn(bot, days_ago(90), events=2, status=Turn.Status.FAILED)
    recent = finished_turn(bot, days_ago(30, MINUTE), events=4)
    running = create_turn(chatbot=bot, status=Turn.Status.RUNNING)
    Turn.objects.filter(pk=running.pk).update(created_at=days_ago(60))
    create_events(running, 5)

    run = tasks.stream_events_prune.apply().get()
    assert run == 9
    assert not StreamEvent.objects.filter(turn__in=[old, old_failed]).exists()
    assert StreamEvent.objects.filter(turn=recent).count() == 4
    assert StreamEvent.objects.filter(turn=running).count() == 5
    assert Turn.objects.filter(pk__in=[old.pk, old_failed.pk, recent.pk]).count() == 3
    job = JobRun.objects.get(job=maintenance.STREAM_EVENTS_JOB)
    assert job.outcome == "ok" and job.rows_affected == 9
    assert job.details["stream_events_deleted"] == 9
    # A client resuming into the pruned turn is told so explicitly.
    with pytest.raises(ApiError) as gone:
        stream_events_after(turn=old, after=2, limit=100)
    assert gone.value.code == "RESUME_POINT_GONE"


def test_running_the_stream_events_job_again_is_harmless_and_scans_only_new_turns(
    retention, make_chatbot
):
    bot = make_chatbot()
    finished_turn(bot, days_ago(31), events=2)
    tasks.stream_events_prune.apply()
    second = tasks.stream_events_prune.apply().get()
    assert second == 0
    runs = list(JobRun.objects.filter(job=maintenance.STREAM_EVENTS_JOB).order_by("started_at"))
    assert [r.rows_affected for r in runs] == [2, 0]
    assert runs[0].details["scanned_from"] is None
    scanned_from = dt.datetime.fromisoformat(runs[1].details["scanned_from"])
    assert scanned_from == dt.datetime.fromisoformat(runs[0].details["cutoff"]) - dt.timedelta(
        hours=1
    )


def test_a_run_started_while_another_holds_the_lock_does_nothing(retention, make_chatbot):
    bot = make_chatbot()
    old = finished_turn(bot, days_ago(40), events=3)
    held, release = threading.Event(), threading.Event()

    def other_run() -> None:
        # Another worker in the middle of the same job (its own database session).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s)",
                [advisory_key("monitoring-job:monitoring.tasks.stream_events_prune")],
            )
            held.set()
            release.wait(10)
            cursor.execute("SELECT pg_advisory_unlock_all()")
        close_old_connections()
        connection.close()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(10)
        tasks.stream_events_prune.apply()
    finally:
        release.set()
        thread.join(10)
    skipped = JobRun.objects.get(job=maintenance.STREAM_EVENTS_JOB)
    assert skipped.outcome == "skipped" and skipped.rows_affected == 0
    assert StreamEvent.objects.filter(turn=old).count() == 3
    tasks.stream_events_prune.apply()
    assert not StreamEvent.objects.filter(turn=old).exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_the_same_moment_delete_exactly_the_expired_rows_once(settings, make_chatbot):
    settings.STREAM_EVENTS_RETENTION_DAYS = 30
    settings.MAINTENANCE_BATCH_SIZE = 2
    bot = make_chatbot()
    expired = [finished_turn(bot, days_ago(31 + i), events=5) for i in range(4)]
    kept = finished_turn(bot, days_ago(29), events=5)
    start = threading.Barrier(2)
    results: list = []

    def run() -> None:
        try:
            start.wait(10)
            results.append(
                job_execute(
                    job=maintenance.STREAM_EVENTS_JOB,
                    task="monitoring.tasks.stream_events_prune",
                    work=maintenance.stream_events_prune,
                )
            )
        except Exception as exc:  # collected, asserted below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(isinstance(r, JobRun) for r in results), results
    assert sum(r.rows_affected for r in results) == 20
    assert {r.outcome for r in results} <= {"ok", "skipped"}
    assert not StreamEvent.objects.filter(turn__in=expired).exists()
    assert StreamEvent.objects.filter(turn=kept).count() == 5


# --- error log and job runs -------------------------------------------------------------------------


def test_error_log_retention_deletes_only_entries_older_than_the_setting(retention):
    outside = [
        ErrorLog.objects.create(category="network", code="A", created_at=days_ago(30, -MINUTE))
        for _ in range(4)
    ]
    inside = ErrorLog.objects.create(category="network", code="B", created_at=days_ago(30, MINUTE))
    new = ErrorLog.objects.create(category="image", code="C")
    rows = tasks.error_logs_prune.apply().get()
    assert set(ErrorLog.objects.values_list("pk", flat=True)) == {inside.pk, new.pk}
    run = JobRun.objects.get(job=maintenance.ERROR_LOGS_JOB)
    assert run.details["error_logs_deleted"] == len(outside) == rows


def test_old_job_runs_go_but_every_jobs_last_run_stays(retention):
    JobRun.objects.create(job="rare-job", outcome="ok", started_at=days_ago(100))
    JobRun.objects.create(job="busy-job", outcome="ok", started_at=days_ago(14, -MINUTE))
    recent = JobRun.objects.create(job="busy-job", outcome="ok", started_at=days_ago(14, MINUTE))
    tasks.error_logs_prune.apply()
    assert JobRun.objects.filter(job="rare-job").count() == 1  # its only (last) run stays
    assert list(JobRun.objects.filter(job="busy-job")) == [recent]
    run = JobRun.objects.get(job=maintenance.ERROR_LOGS_JOB)
    assert run.details["job_runs_deleted"] == 1


# --- caches -----------------------------------------------------------------------------------------


def test_cache_cleanup_removes_entries_that_lost_their_ttl_and_nothing_else(make_chatbot):
    from chatbots.selectors import chatbot_config_get

    redis = get_redis()
    make_chatbot(public_id="fresh")
    chatbot_config_get(public_id="fresh")  # cached with a TTL
    redis.set("cb:config:orphan", "{}")  # no TTL: would never expire
    redis.set("cb:template:orphan", "{}")
    redis.xadd("cb:turn:abc:events", {"e": "{}"})  # an event stream that lost its TTL
    redis.xadd("cb:turn:def:events", {"e": "{}"})
    redis.expire("cb:turn:def:events", 100)
    redis.set("unrelated:key", "1")
    rows = tasks.cache_cleanup.apply().get()
    assert redis.exists("cb:config:fresh") == 1
    assert redis.exists("cb:config:orphan", "cb:template:orphan") == 0
    assert 0 < redis.ttl("cb:turn:abc:events") <= 3600
    assert redis.ttl("cb:turn:def:events") <= 100
    assert redis.exists("unrelated:key") == 1
    run = JobRun.objects.get(job=maintenance.CACHE_CLEANUP_JOB)
    assert run.details["cache_entries_without_ttl_deleted"] == 2
    assert run.details["event_streams_given_ttl"] == 1
    assert rows == run.rows_affected == 3


# --- turn metrics (analytics) ---------------------------------------------------------------------------


def test_turn_metrics_cleanup_calls_analytics_when_it_exists(monkeypatch):
    import analytics.services

    calls = []
    monkeypatch.setattr(
        analytics.services, "turn_metrics_cleanup", lambda: calls.append(1) or 12, raising=False
    )
    assert tasks.turn_metrics_cleanup.apply().get() == 12
    assert calls == [1]
    assert JobRun.objects.get(job=maintenance.TURN_METRICS_JOB).outcome == "ok"


def test_turn_metrics_cleanup_is_skipped_with_a_note_while_analytics_lacks_it(monkeypatch):
    import analytics.services

    monkeypatch.delattr(analytics.services, "turn_metrics_cleanup", raising=False)
    tasks.turn_metrics_cleanup.apply()
    run = JobRun.objects.get(job=maintenance.TURN_METRICS_JOB)
    assert run.outcome == "skipped"
    assert "does not exist" in run.message


def test_a_failing_job_is_stored_as_failed_and_raised():
    def broken(progress: JobProgress) -> None:
        progress.rows = 5
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        job_execute(job="broken-job", task="x", work=broken)
    run = JobRun.objects.get(job="broken-job")
    assert run.outcome == "failed" and run.rows_affected == 5 and "disk full" in run.message


def test_a_task_started_by_beat_is_recorded_under_its_schedule_name():
    tasks.cache_cleanup.apply(headers={"periodic_task_name": "cache-cleanup-extra"})
    assert JobRun.objects.filter(job="cache-cleanup-extra").count() == 1


def test_job_runs_show_in_the_monitoring_health(staff_client, lonely_broker):
    tasks.cache_cleanup.apply()
    body = staff_client.get("/api/monitoring/conversation-health").json()
    last = body["maintenance"]["cache-cleanup"]["last_run"]
    assert last["outcome"] == "ok"
    assert last["rows_affected"] == 0 and last["duration_ms"] is not None
    assert body["maintenance"]["cache-cleanup"]["schedule"] == "every 1800 seconds"
    assert body["maintenance"]["cache-cleanup"]["enabled"] is True


# --- beat schedules in the database -------------------------------------------------------------------


def test_every_default_schedule_is_in_the_database_after_migrate(settings):
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert set(settings.CELERY_BEAT_SCHEDULE) <= names
    cleanup = PeriodicTask.objects.get(name="cache-cleanup")
    assert cleanup.task == "monitoring.tasks.cache_cleanup"
    assert (cleanup.interval.every, cleanup.interval.period) == (1800, "seconds")
    metrics = PeriodicTask.objects.get(name="turn-metrics-cleanup")
    assert (metrics.crontab.minute, metrics.crontab.hour) == ("0", "4")
    assert PeriodicTask.objects.get(name="stream-events-retention").interval.every == 3600
    assert PeriodicTask.objects.get(name="reap-stale-turns").interval.every == 60


def test_admin_edits_survive_until_the_default_itself_changes(settings):
    from django_celery_beat.models import IntervalSchedule

    task = PeriodicTask.objects.get(name="cache-cleanup")
    task.interval = IntervalSchedule.objects.create(every=600, period="seconds")
    task.enabled = False
    task.save()
    assert schedules_ensure()["cache-cleanup"] == "kept"
    task.refresh_from_db()
    assert task.interval.every == 600 and task.enabled is False

    settings.CELERY_BEAT_SCHEDULE = {
        **settings.CELERY_BEAT_SCHEDULE,
        "cache-cleanup": {"task": "monitoring.tasks.cache_cleanup", "schedule": 900.0},
    }
    assert schedules_ensure()["cache-cleanup"] == "updated"
    task.refresh_from_db()
    assert task.interval.every == 900


def test_a_default_removed_from_settings_is_disabled_not_deleted(settings):
    schedule = dict(settings.CELERY_BEAT_SCHEDULE)
    schedule.pop("error-log-retention")
    settings.CELERY_BEAT_SCHEDULE = schedule
    assert schedules_ensure()["error-log-retention"] == "disabled"
    assert PeriodicTask.objects.get(name="error-log-retention").enabled is False


@pytest.mark.django_db(transaction=True)  # beat closes connections that are inside a transaction
def test_beat_starting_does_not_undo_admin_edits():
    from django_celery_beat.models import IntervalSchedule

    from config.celery import app
    from monitoring.beat import DatabaseScheduler

    task = PeriodicTask.objects.get(name="stream-events-retention")
    task.interval = IntervalSchedule.objects.create(every=7200, period="seconds")
    task.save()
    DatabaseScheduler(app=app)
    task.refresh_from_db()
    assert task.interval.every == 7200


def test_the_ensure_schedules_command_reports_each_schedule():
    out = StringIO()
    call_command("ensure_schedules", stdout=out)
    assert "cache-cleanup: kept" in out.getvalue()

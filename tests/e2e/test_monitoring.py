"""End to end: health sees a real worker and loses it when it dies; real turns and tasks on the
stack's worker move pool statistics, record failures and scheduled-job runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from config.celery import app
from devstack.workers import celery_worker_cmd
from monitoring import pool_stats, selectors
from monitoring.models import ErrorLog, JobRun
from tests.e2e.client import answer_text, post_message, ws_events
from tests.e2e.conftest import ARTIFACTS, ROOT, _database_url
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def staff_client() -> Client:
    user = get_user_model().objects.create_superuser("ops", password="pw")  # operators only
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def own_broker(settings):
    """A broker database only the worker this test starts listens on."""
    base = settings.CELERY_BROKER_URL.rstrip("/").rpartition("/")[0]
    url = f"{base}/9"  # 10-13 belong to the reliability and shutdown tests
    selectors.redis_client(url).flushdb()
    settings.CELERY_BROKER_URL = url
    settings.HEALTH_CELERY_CACHE_SECONDS = 0
    yield url
    selectors.redis_client(url).flushdb()


@pytest.mark.urls("monitoring.tests.urls")
def test_health_sees_a_worker_and_reports_it_down_when_it_dies(own_broker, client):
    log = ARTIFACTS / "e2e-monitoring-worker.log"
    ARTIFACTS.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": own_broker,
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "SECRET_KEY": settings.SECRET_KEY,
    }
    worker = subprocess.Popen(
        celery_worker_cmd(f"mon-{os.getpid()}", "maintenance", "threads", 2),
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: b" ready." in log.read_bytes(), 60, "the worker to start")
        healthy = wait_until(
            lambda: (r := client.get("/health")).status_code == 200 and r, 15, "a healthy /health"
        )
        assert healthy.json()["dependencies"]["celery"] == {"status": "up", "workers": 1}
        workers = selectors.celery_workers()["workers"]
        detail = selectors.celery_workers_detail(workers)[workers[0]]
        assert detail["pool"] == "TaskPool" or "thread" in detail["pool"].lower()
        assert detail["concurrency"] == 2
        assert detail["queues"] == ["maintenance"]
        assert detail["active"] == 0 and detail["reserved"] == 0
        report = staff_client().get("/api/monitoring/conversation-health")
        assert report.status_code == 200, report.json()["problems"]
        assert report.json()["status"] == "healthy"
        assert report.json()["celery"]["workers"] == workers
    finally:
        worker.send_signal(signal.SIGKILL)  # a dead worker, not a polite shutdown
        worker.wait(20)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["dependencies"]["celery"] == {"status": "down", "workers": 0}


def test_a_real_turn_moves_the_pool_statistics_of_its_endpoint(stack):
    with FakeFlowise() as flowise:
        flowise.scenario.tokens = ["Our", " shop", " opens", " at", " nine."]
        bot = create_chatbot(public_id="pools-e2e", with_main_flow=False)
        endpoint = create_endpoint(
            name="Flowise e2e", kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url,
            api_key="fw-key-0123456789", pool_size=3, read_timeout=5.0, total_timeout=20,
        )  # fmt: skip
        create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        reply = post_message(stack.base_url, "pools-e2e", "When do you open?")
        events = asyncio.run(ws_events(reply))
    assert answer_text(events) == "Our shop opens at nine."

    def counted():
        pools = {p["name"]: p for p in pool_stats.pool_stats()["pools"]}
        pool = pools.get("ai:Flowise e2e")
        return pool if pool and pool["requests"] == 1 else None

    pool = wait_until(counted, 10, "the end of the call to be counted")
    assert pool["successes"] == 1 and pool["in_use"] == 0
    assert pool["processes"] == 1  # the stack's worker, alive
    response = staff_client().get("/api/monitoring/connection-pools")
    assert any(p["name"] == "ai:Flowise e2e" for p in response.json()["pools"])


def test_the_worker_records_failed_tasks_and_runs_of_scheduled_jobs(stack):
    # A scheduled job as beat sends it (django-celery-beat adds this header).
    app.send_task(
        "monitoring.tasks.cache_cleanup", queue="celery",
        headers={"periodic_task_name": "e2e-cache-cleanup"},
    )  # fmt: skip
    # A task that raises on the worker.
    app.send_task("monitoring.tasks.cache_cleanup", args=["unexpected"], queue="celery")
    run = wait_until(
        lambda: JobRun.objects.filter(job="e2e-cache-cleanup", outcome="ok").first(),
        30,
        "the job run",
    )
    assert run.worker and run.duration_ms is not None
    failure = wait_until(
        lambda: ErrorLog.objects.filter(category="worker").first(), 30, "the failed task"
    )
    assert failure.context["task"] == "monitoring.tasks.cache_cleanup"
    assert failure.context["queue"] == "celery"
    assert "TypeError" in failure.stack

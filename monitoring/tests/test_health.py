"""The health endpoints: healthy, each dependency down, and what outsiders may see."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from conversations.models import Turn
from monitoring import selectors
from monitoring.tests.conftest import closed_port
from monitoring.tests.factories import create_turn

pytestmark = pytest.mark.django_db

STAFF_GETS = [
    "/api/monitoring/conversation-health",
    "/api/monitoring/connection-pools",
    "/api/monitoring/cache-stats",
]
STAFF_POSTS = ["/api/monitoring/clear-cache", "/api/monitoring/reset-pool-stats"]


def enqueue(name: str, **options) -> None:
    """Publish a task by name to the broker the settings name (no worker will take it)."""
    from config.celery import app

    with selectors.broker_connection() as connection:
        app.send_task(name, connection=connection, **options)


def test_conversation_health_answers_in_the_seed_shape_with_running_turns_counted(
    client, make_chatbot
):
    bot = make_chatbot()
    create_turn(chatbot=bot, status=Turn.Status.RUNNING)
    create_turn(chatbot=bot, status=Turn.Status.RUNNING)
    create_turn(chatbot=bot, status=Turn.Status.COMPLETED)
    response = client.get("/api/conversation-health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database"] == "connected"
    assert body["redis"] == "connected"
    assert body["active_streams"] == 2
    assert body["timestamp"].startswith(str(time.gmtime().tm_year))
    assert response["Cache-Control"] == "no-store"


def test_conversation_health_is_503_and_degraded_when_redis_is_down(client, redis_down):
    response = client.get("/api/conversation-health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["redis"] == "disconnected"
    assert body["database"] == "connected"
    # Outsiders learn the state, not the addresses or errors behind it.
    assert "127.0.0.1" not in response.content.decode()
    assert set(body) == {"status", "database", "redis", "active_streams", "timestamp"}


@pytest.mark.django_db(transaction=True)
def test_conversation_health_is_503_when_the_database_is_down(client):
    saved = dict(connection.settings_dict)
    connection.close()
    connection.close_pool()  # the pool was built from the old settings: rebuild it from these
    connection.settings_dict.update(
        HOST="127.0.0.1", PORT=str(closed_port()), OPTIONS=_short_pool_wait(saved["OPTIONS"])
    )
    try:
        response = client.get("/api/conversation-health")
    finally:
        connection.close()
        connection.close_pool()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "disconnected"
    assert body["active_streams"] is None
    assert "password" not in response.content.decode().lower()


@pytest.mark.parametrize("path", ["/health", "/api/conversation-health"])
def test_a_head_request_to_a_health_check_answers_like_get(client, path):
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code
    assert head.status_code in (200, 503)  # /health is 503 here: no Celery worker answers
    assert head["Content-Type"] == got["Content-Type"] == "application/json"
    assert head["Cache-Control"] == "no-store"
    # No body: tests/e2e/test_asgi_edges.py asks real Daphne (the test client strips it anyway).


@pytest.mark.parametrize("path", ["/health", "/api/conversation-health"])
def test_a_head_request_to_a_health_check_is_503_when_redis_is_down(client, redis_down, path):
    assert client.head(path).status_code == 503


def _short_pool_wait(options: dict) -> dict:
    """A pooled connection to a dead server fails after the pool's wait: keep the test short."""
    if "pool" not in options:
        return options
    return {**options, "pool": {**options["pool"], "timeout": 1}}


def test_database_check_reports_a_refused_connection_without_raising():
    broken = connection.copy()
    # Without the pool: the process's pool belongs to the alias and holds working connections.
    options = {k: v for k, v in connection.settings_dict["OPTIONS"].items() if k != "pool"}
    broken.settings_dict = {
        **connection.settings_dict,
        "HOST": "127.0.0.1",
        "PORT": closed_port(),
        "OPTIONS": options,
    }
    result = selectors.database_check(connection=broken)
    assert result["status"] == "down"
    assert "OperationalError" in result["error"]
    assert selectors.database_check()["status"] == "up"


@pytest.mark.urls("monitoring.tests.urls")
def test_health_is_503_with_celery_down_when_no_worker_answers(client, lonely_broker):
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["database"]["status"] == "connected"
    assert body["dependencies"]["redis"]["status"] == "connected"
    assert body["dependencies"]["celery"] == {"status": "down", "workers": 0}
    assert body["uptime"] > 0
    assert body["memory"]["rss_bytes"] > 0
    assert body["connections"]["database"] >= 1
    assert body["connections"]["process_tcp"] >= 1


@pytest.mark.urls("monitoring.tests.urls")
def test_health_reports_every_dependency_down_when_redis_and_broker_are_gone(
    client, redis_down, broker_down
):
    response = client.get("/health")
    assert response.status_code == 503
    deps = response.json()["dependencies"]
    assert deps["redis"]["status"] == "disconnected"
    assert deps["celery"]["status"] == "down"
    assert deps["database"]["status"] == "connected"


def test_the_celery_ping_is_cached_for_a_few_seconds(settings, lonely_broker):
    settings.HEALTH_CELERY_CACHE_SECONDS = 60
    first = selectors.celery_workers()
    second = selectors.celery_workers()
    assert first["cached"] is False and second["cached"] is True
    assert second["checked_at"] == first["checked_at"]
    assert selectors.celery_workers(use_cache=False)["cached"] is False


def test_monitoring_health_reports_dependencies_queues_and_jobs_to_staff(
    staff_client, lonely_broker, make_chatbot
):
    bot = make_chatbot()
    create_turn(chatbot=bot, status=Turn.Status.RUNNING)
    create_turn(chatbot=bot, status=Turn.Status.PENDING)
    enqueue("analytics.tasks.sync_conversation_index", queue="analytics")
    enqueue("analytics.tasks.sync_conversation_index", queue="analytics")
    response = staff_client.get("/api/monitoring/conversation-health")
    body = response.json()
    # No worker listens on this broker: celery is down, so the report is degraded.
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["celery"]["status"] == "down" and body["celery"]["workers"] == []
    assert any(p.startswith("celery:") for p in body["problems"])
    assert body["database"]["status"] == "up"
    assert body["redis"]["status"] == "up"
    assert body["channel_layer"]["status"] == "up"
    assert body["channel_layer"]["round_trip_ms"] >= 0
    assert body["broker"]["status"] == "up"
    assert set(body["queues"]) == {"turns", "analytics", "maintenance", "celery"}
    analytics = body["queues"]["analytics"]
    assert analytics["depth"] == 2
    assert 0 <= analytics["oldest_waiting_seconds"] < 60 and analytics["stuck"] is False
    assert body["queues"]["maintenance"] == {
        "depth": 0,
        "oldest_waiting_seconds": None,
        "stuck": False,
    }
    assert body["active_streams"] == 1
    assert body["turns"] == {"pending": 1, "running": 1}
    assert "cache-cleanup" in body["maintenance"]
    assert body["maintenance"]["cache-cleanup"]["last_run"] is None
    assert body["memory"]["rss_bytes"] > 0 and body["uptime"] > 0


def test_a_task_waiting_too_long_marks_its_queue_stuck(settings, lonely_broker):
    settings.QUEUE_STUCK_SECONDS = 120
    enqueue(
        "monitoring.tasks.cache_cleanup",
        queue="maintenance",
        headers={"enqueued_at": time.time() - 500},
    )
    queues = selectors.queue_stats()
    assert queues["maintenance"]["depth"] == 1
    assert 499 <= queues["maintenance"]["oldest_waiting_seconds"] < 600
    assert queues["maintenance"]["stuck"] is True
    body, healthy = selectors.conversation_health_full()
    assert not healthy
    assert any(p.startswith("queue maintenance:") for p in body["problems"])


def test_monitoring_health_is_503_with_redis_and_channel_layer_down(staff_client, redis_down):
    response = staff_client.get("/api/monitoring/conversation-health")
    assert response.status_code == 503
    body = response.json()
    assert body["redis"]["status"] == "down"
    assert body["channel_layer"]["status"] == "down"
    assert body["database"]["status"] == "up"


def test_the_channel_layer_check_round_trips_a_message():
    result = selectors.channel_layer_check()
    assert result["status"] == "up"
    assert result["round_trip_ms"] < 2000


def test_cache_stats_show_the_configuration_cache_to_staff(staff_client, make_chatbot):
    from chatbots.selectors import chatbot_config_get

    make_chatbot(public_id="shop")
    chatbot_config_get(public_id="shop")
    chatbot_config_get(public_id="shop")
    body = staff_client.get("/api/monitoring/cache-stats").json()
    assert body["config"]["hits"] == 1
    assert body["config"]["misses"] == 1
    assert body["config"]["size"] == 1
    assert body["config"]["hit_rate"] == 0.5


def test_cache_stats_are_503_in_the_error_envelope_when_redis_is_down(staff_client, redis_down):
    response = staff_client.get("/api/monitoring/cache-stats")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "REDIS_UNAVAILABLE"
    assert "127.0.0.1" not in response.content.decode()


def test_clear_cache_drops_cached_configurations(staff_client, make_chatbot):
    from chatbots.selectors import cache_stats, chatbot_config_get

    make_chatbot(public_id="a")
    make_chatbot(public_id="b")
    chatbot_config_get(public_id="a")
    chatbot_config_get(public_id="b")
    response = staff_client.post("/api/monitoring/clear-cache")
    assert response.status_code == 200
    assert response.json() == {"cleared": 2}
    assert cache_stats()["config"]["size"] == 0


def test_clear_cache_is_503_when_redis_is_down(staff_client, redis_down):
    response = staff_client.post("/api/monitoring/clear-cache")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "REDIS_UNAVAILABLE"


@pytest.mark.parametrize("path", STAFF_GETS)
def test_outsiders_get_nothing_from_staff_endpoints(client, member_client, path):
    for who, status, code in (
        (client, 401, "NOT_AUTHENTICATED"),
        (member_client, 403, "PERMISSION_DENIED"),
    ):
        response = who.get(path)
        assert response.status_code == status, (path, response.status_code)
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("path", STAFF_POSTS)
def test_outsiders_cannot_clear_caches_or_reset_statistics(
    client, member_client, make_chatbot, path
):
    from chatbots.selectors import cache_stats, chatbot_config_get

    make_chatbot(public_id="kept")
    chatbot_config_get(public_id="kept")
    for who, status in ((client, 401), (member_client, 403)):
        response = who.post(path)
        assert response.status_code == status, (path, response.status_code)
        assert set(response.json()) == {"error"}
    assert cache_stats()["config"]["size"] == 1


def test_staff_endpoints_refuse_the_wrong_method(staff_client):
    assert staff_client.get("/api/monitoring/clear-cache").status_code == 405
    assert staff_client.post("/api/monitoring/cache-stats").status_code == 405

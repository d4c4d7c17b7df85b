"""GET /metrics: who may scrape it, and the figures it exposes (Prometheus text format)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatbots.selectors import chatbot_config_get
from conversations.models import Turn
from conversations.services import turn_finished
from monitoring import pool_stats, tasks
from monitoring.services import error_record
from monitoring.tests.factories import create_turn

pytestmark = [pytest.mark.django_db, pytest.mark.urls("monitoring.tests.urls")]


def samples(response) -> dict[tuple[str, tuple], float]:
    text = response.content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_outsiders_cannot_scrape(client, member_client, settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["code"] == "NOT_AUTHENTICATED"
    assert member_client.get("/metrics").status_code == 403
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "METRICS_TOKEN_INVALID"
    assert b"chatbot_" not in anonymous.content + wrong.content


def test_no_token_is_accepted_when_none_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_prometheus_scrapes_with_the_token(client, settings, lonely_broker):
    settings.METRICS_TOKEN = "scrape-token-123"
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_metrics_carry_pools_caches_queues_workers_turns_and_errors(
    staff_client, lonely_broker, make_chatbot, make_endpoint, django_capture_on_commit_callbacks
):
    bot = make_chatbot(public_id="shop")
    endpoint = make_endpoint(name="Prod", pool_size=4)
    config = {"id": endpoint.id, "name": "Prod", "kind": "builtin", "pool_size": 4}

    async def calls() -> None:
        for _ in range(2):
            await pool_stats.call_observer("start", config, None)
            await pool_stats.call_observer("end", config, {"status": "ok", "latency_ms": 5})
        await pool_stats.drain()

    asyncio.run(calls())
    chatbot_config_get(public_id="shop")
    chatbot_config_get(public_id="shop")
    create_turn(chatbot=bot, status=Turn.Status.RUNNING)
    failed = create_turn(
        chatbot=bot, status=Turn.Status.FAILED, error_code="X", error_category="network"
    )
    with django_capture_on_commit_callbacks(execute=True):
        turn_finished.send(sender=Turn, turn_id=str(failed.pk), status="failed")
        error_record(category="image", code="IMAGE_CORRUPT", message="bad")
    tasks.cache_cleanup.apply()

    values = samples(staff_client.get("/metrics"))
    pool = (("kind", "builtin"), ("pool", "ai:Prod"))
    assert values[("chatbot_pool_requests_total", pool)] == 2
    assert values[("chatbot_pool_successes_total", pool)] == 2
    assert values[("chatbot_pool_limit", pool)] == 4
    assert values[("chatbot_pool_in_use", pool)] == 0
    assert values[("chatbot_cache_hits_total", (("cache", "config"),))] == 1
    assert values[("chatbot_cache_misses_total", (("cache", "config"),))] == 1
    assert values[("chatbot_queue_depth", (("queue", "turns"),))] == 0
    assert values[("chatbot_celery_workers", ())] == 0
    assert values[("chatbot_dependency_up", (("dependency", "celery"),))] == 0
    assert values[("chatbot_dependency_up", (("dependency", "database"),))] == 1
    assert values[("chatbot_turns", (("status", "running"),))] == 1
    assert values[("chatbot_turns_finished_total", (("status", "failed"),))] == 1
    assert values[("chatbot_errors_total", (("category", "network"),))] == 1
    assert values[("chatbot_errors_total", (("category", "image"),))] == 1
    assert values[("chatbot_job_last_run_success", (("job", "cache-cleanup"),))] == 1


def test_metrics_still_answer_when_redis_is_down(staff_client, redis_down, lonely_broker):
    response = staff_client.get("/metrics")
    assert response.status_code == 200
    values = samples(response)
    assert values[("chatbot_dependency_up", (("dependency", "redis"),))] == 0
    assert not any(name.startswith("chatbot_pool_") for name, _ in values)

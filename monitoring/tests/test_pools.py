"""Connection-pool statistics: the call observer, dead processes, reset, and a real turn."""

from __future__ import annotations

import asyncio

import pytest

from chatbots.models import AIEndpoint
from config.redis import get_redis
from conversations.hooks import call_observers
from conversations.models import Turn
from monitoring import pool_stats
from monitoring.maintenance import JobProgress, cache_cleanup
from monitoring.tests.factories import create_turn
from tests.fakes.flowise import FakeFlowise

pytestmark = pytest.mark.django_db


def endpoint_config(endpoint: AIEndpoint) -> dict:
    """What the runner hands the observer (chatbots.selectors' resolved endpoint)."""
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "kind": endpoint.kind,
        "pool_size": endpoint.pool_size,
    }


def observe(*calls: tuple[str, dict, dict | None]) -> None:
    async def run() -> None:
        for phase, endpoint, record in calls:
            await pool_stats.call_observer(phase, endpoint, record)
        await pool_stats.drain()

    asyncio.run(run())


def stats_for(name: str) -> dict:
    return next(p for p in pool_stats.pool_stats()["pools"] if p["name"] == name)


def test_the_observer_is_registered_with_the_turn_runner():
    assert pool_stats.call_observer in call_observers()


def test_pool_statistics_move_when_calls_start_and_end(make_endpoint):
    endpoint = endpoint_config(make_endpoint(name="Flowise prod", pool_size=2))
    observe(*[("start", endpoint, None)] * 3)
    busy = stats_for("ai:Flowise prod")
    assert (busy["in_use"], busy["waiting"], busy["limit"], busy["processes"]) == (2, 1, 2, 1)
    assert busy["requests"] == 0
    observe(
        (
            "end",
            endpoint,
            {
                "status": "ok",
                "latency_ms": 900,
                "attempts": 2,
                "retries": 1,
                "pool_wait_seconds": 0.5,
            },
        ),
        (
            "end",
            endpoint,
            {
                "status": "error",
                "error_code": "UPSTREAM_TIMEOUT",
                "latency_ms": 300,
                "attempts": 3,
                "retries": 2,
                "pool_wait_seconds": 0.1,
            },
        ),
        (
            "end",
            endpoint,
            {
                "status": "cancelled",
                "latency_ms": 0,
                "attempts": 1,
                "retries": 0,
                "pool_wait_seconds": 0,
            },
        ),
    )
    done = stats_for("ai:Flowise prod")
    assert (done["in_use"], done["waiting"]) == (0, 0)
    assert done["requests"] == 3
    assert (done["successes"], done["failures"], done["cancelled"]) == (1, 1, 1)
    assert done["timeouts"] == 1
    assert done["retries"] == 3
    assert done["success_rate"] == 0.5
    assert done["average_wait_seconds"] == pytest.approx(0.2)
    assert done["average_latency_ms"] == pytest.approx(400.0)
    assert done["kind"] == "builtin" and done["configured"] is True


def test_configured_endpoints_show_up_before_their_first_call(make_endpoint):
    make_endpoint(name="Quiet", pool_size=7)
    quiet = stats_for("ai:Quiet")
    assert quiet["requests"] == 0 and quiet["limit"] == 7 and quiet["success_rate"] is None


def test_a_dead_workers_calls_stop_counting_and_are_cleaned_up(make_endpoint):
    endpoint = endpoint_config(make_endpoint(name="Shared", pool_size=5))
    observe(("start", endpoint, None))
    # What a killed worker leaves behind: in-flight counts and no heartbeat.
    redis = get_redis()
    redis.hset(pool_stats.inflight_key("ai:Shared"), "dead-host:4242", 4)
    assert stats_for("ai:Shared")["in_use"] == 1
    progress = JobProgress()
    cache_cleanup(progress)
    assert progress.details["dead_process_fields"] == 1
    assert redis.hexists(pool_stats.inflight_key("ai:Shared"), "dead-host:4242") is False
    assert stats_for("ai:Shared")["in_use"] == 1


def test_statistics_of_a_deleted_endpoint_are_dropped_by_the_clean_up(make_endpoint):
    gone = make_endpoint(name="Old endpoint")
    observe(
        ("start", endpoint_config(gone), None), ("end", endpoint_config(gone), {"status": "ok"})
    )
    gone.delete()
    assert stats_for("ai:Old endpoint")["configured"] is False
    cache_cleanup(JobProgress())
    assert "ai:Old endpoint" not in [p["name"] for p in pool_stats.pool_stats()["pools"]]


def test_staff_read_and_reset_pool_statistics(
    staff_client, make_endpoint, django_assert_num_queries
):
    endpoint = endpoint_config(make_endpoint(name="Main", pool_size=3))
    observe(("start", endpoint, None), ("end", endpoint, {"status": "ok", "latency_ms": 10}))
    observe(("start", endpoint, None))  # still in flight during the reset
    make_endpoint(name="Second")
    make_endpoint(name="Third")
    # Session, user, endpoints: the number of pools does not add queries.
    with django_assert_num_queries(3):
        response = staff_client.get("/api/monitoring/connection-pools")
    pools = {p["name"]: p for p in response.json()["pools"]}
    assert pools["ai:Main"]["requests"] == 1 and pools["ai:Main"]["in_use"] == 1
    assert {"ai:Second", "ai:Third"} <= set(pools)
    reset = staff_client.post("/api/monitoring/reset-pool-stats")
    assert reset.status_code == 200 and reset.json() == {"pools_reset": 1}
    after = staff_client.get("/api/monitoring/connection-pools").json()
    main = next(p for p in after["pools"] if p["name"] == "ai:Main")
    assert main["requests"] == 0 and main["in_use"] == 1
    assert after["counting_since"] is not None


def test_connection_pools_are_503_when_redis_is_down(staff_client, redis_down):
    response = staff_client.get("/api/monitoring/connection-pools")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "REDIS_UNAVAILABLE"


def test_resetting_pool_statistics_is_503_when_redis_is_down(staff_client, redis_down):
    response = staff_client.post("/api/monitoring/reset-pool-stats")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "REDIS_UNAVAILABLE"


def test_the_observer_never_raises_into_a_call_when_redis_is_down(make_endpoint, redis_down):
    endpoint = endpoint_config(make_endpoint(name="Unlucky"))
    observe(("start", endpoint, None), ("end", endpoint, {"status": "ok"}))


@pytest.mark.django_db(transaction=True)
def test_a_real_turn_through_the_worker_runtime_is_counted(make_chatbot, make_endpoint, make_flow):
    from conversations.runner import turn_run
    from conversations.runtime import get_runtime

    with FakeFlowise() as flowise:
        flowise.scenario.tokens = ["Hello", " there"]
        endpoint = make_endpoint(
            name="Fake Flowise",
            kind=AIEndpoint.Kind.FLOWISE,
            base_url=flowise.url,
            api_key="fw-key-0123456789",
            pool_size=4,
        )
        bot = make_chatbot(with_main_flow=False)
        make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        turn = create_turn(chatbot=bot)
        runtime = get_runtime()
        status = runtime.submit(turn_run(runtime, str(turn.pk))).result(30)
        runtime.submit(pool_stats.drain()).result(5)
    assert status == "completed"
    assert Turn.objects.get(pk=turn.pk).status == Turn.Status.COMPLETED
    figures = stats_for("ai:Fake Flowise")
    assert figures["requests"] == 1 and figures["successes"] == 1
    assert figures["in_use"] == 0 and figures["processes"] == 1
    assert figures["kind"] == "flowise"

"""HTTP, WebSocket and Celery task metrics: after requests, sockets and tasks, /metrics shows
their counts by route/method/status class (or outcome) and duration histograms, summed over
processes through Redis."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from celery import shared_task
from prometheus_client.parser import text_string_to_metric_families

from config.socket_limits import AddressSockets, SocketLimitMiddleware
from monitoring.runtime_metrics import RECORDER, runtime_metrics_flush, websocket_route

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_recorder():
    RECORDER.counts.clear()
    RECORDER.floats.clear()


def scrape(client) -> dict[tuple[str, tuple], float]:
    runtime_metrics_flush()
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_requests_are_counted_by_route_method_and_status_class_with_a_latency_histogram(
    staff_client, client, make_chatbot, lonely_broker
):
    bot = make_chatbot(public_id="shop")
    for _ in range(3):
        assert client.get(f"/api/conversation-config/{bot.public_id}").status_code == 200
    assert client.get("/api/conversation-config/nobody-here").status_code == 404
    client.get(f"/api/stream-events/{uuid.uuid4()}")  # no token: a 4xx
    client.get("/no/such/path/at/all")

    metrics = scrape(staff_client)

    route = "/api/conversation-config/<str:chatbot_id>"
    ok = ("route", route), ("method", "GET"), ("status_class", "2xx")
    assert metrics[("chatbot_http_requests_total", tuple(sorted(ok)))] == 3
    missing = ("route", route), ("method", "GET"), ("status_class", "4xx")
    assert metrics[("chatbot_http_requests_total", tuple(sorted(missing)))] == 1
    unmatched = ("route", "unmatched"), ("method", "GET"), ("status_class", "4xx")
    assert metrics[("chatbot_http_requests_total", tuple(sorted(unmatched)))] == 1
    assert not any("no/such" in str(labels) for _, labels in metrics)  # raw paths never labels
    count = metrics[("chatbot_http_request_duration_seconds_count", (("route", route),))]
    inf = metrics[
        ("chatbot_http_request_duration_seconds_bucket", (("le", "+Inf"), ("route", route)))
    ]
    assert count == inf == 4
    assert metrics[("chatbot_http_request_duration_seconds_sum", (("route", route),))] > 0


def test_figures_add_up_across_flushes_as_from_several_processes(
    staff_client, client, make_chatbot, lonely_broker
):
    bot = make_chatbot(public_id="shop")
    client.get(f"/api/conversation-config/{bot.public_id}")
    runtime_metrics_flush()  # what one process wrote
    client.get(f"/api/conversation-config/{bot.public_id}")
    metrics = scrape(staff_client)
    labels = (
        ("method", "GET"),
        ("route", "/api/conversation-config/<str:chatbot_id>"),
        ("status_class", "2xx"),
    )
    assert metrics[("chatbot_http_requests_total", labels)] == 2


async def accepting_app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await receive()


async def rejecting_app(scope, receive, send):
    await receive()
    await send({"type": "websocket.close"})


def open_and_close(app, path: str) -> None:
    async def run():
        scope = {
            "type": "websocket",
            "path": path,
            "query_string": b"",
            "headers": [],
            "client": ["203.0.113.9", 5000],
        }
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "websocket.connect"})
        await communicator.receive_output(5)
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)

    async_to_sync(run)()


def test_websockets_are_counted_by_route_and_outcome(staff_client, settings, lonely_broker):
    settings.WS_MAX_SOCKETS_PER_ADDRESS = 5
    session = uuid.uuid4()
    open_and_close(
        SocketLimitMiddleware(accepting_app, AddressSockets()), f"/ws/conversations/{session}/"
    )
    open_and_close(
        SocketLimitMiddleware(rejecting_app, AddressSockets()), f"/ws/conversations/{session}/"
    )
    full = AddressSockets()
    full.open["203.0.113.9"] = 5
    open_and_close(SocketLimitMiddleware(accepting_app, full), "/ws/conversations/x/")

    metrics = scrape(staff_client)

    route = "/ws/conversations/{id}/"
    for outcome in ("accepted", "rejected"):
        key = ("chatbot_websocket_connections_total", (("outcome", outcome), ("route", route)))
        assert metrics[key] == 1
    refused = (("outcome", "refused"), ("route", "/ws/conversations/x/"))
    assert metrics[("chatbot_websocket_connections_total", refused)] == 1
    assert metrics[("chatbot_websocket_session_duration_seconds_count", (("route", route),))] == 2


def test_websocket_routes_hide_ids():
    assert websocket_route(f"/ws/conversations/{uuid.uuid4()}/") == "/ws/conversations/{id}/"
    assert websocket_route("/socket.io/") == "/socket.io/"
    assert websocket_route("/ws/conversations/12345/extra/more/") == "/ws/conversations/{id}/"


@shared_task(name="monitoring.tests.metric_ok")
def metric_ok() -> int:
    return 1


@shared_task(name="monitoring.tests.metric_boom")
def metric_boom() -> None:
    raise ValueError("boom")


def test_celery_tasks_are_counted_by_name_and_outcome_with_durations(staff_client, lonely_broker):
    metric_ok.apply()
    metric_ok.apply()
    metric_boom.apply()

    metrics = scrape(staff_client)

    ok = (("outcome", "success"), ("task", "monitoring.tests.metric_ok"))
    assert metrics[("chatbot_celery_tasks_total", ok)] == 2
    failed = (("outcome", "failure"), ("task", "monitoring.tests.metric_boom"))
    assert metrics[("chatbot_celery_tasks_total", failed)] == 1
    duration = (("task", "monitoring.tests.metric_ok"),)
    assert metrics[("chatbot_celery_task_duration_seconds_count", duration)] == 2


def test_the_grafana_dashboard_queries_only_metrics_we_export(
    staff_client, client, make_chatbot, lonely_broker
):
    import json
    import re
    from pathlib import Path

    from django.conf import settings

    bot = make_chatbot(public_id="shop")
    client.get(f"/api/conversation-config/{bot.public_id}")
    metric_ok.apply()
    open_and_close(SocketLimitMiddleware(accepting_app, AddressSockets()), "/ws/x/")
    runtime_metrics_flush()
    text = staff_client.get("/metrics").content.decode()
    exported = set()
    for family in text_string_to_metric_families(text):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        exported.update(family.name + s for s in suffixes.get(family.type, []))

    dashboard = json.loads(
        (Path(settings.BASE_DIR) / "deploy" / "grafana-dashboard.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\bchatbot_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 15
    assert queried <= exported, queried - exported

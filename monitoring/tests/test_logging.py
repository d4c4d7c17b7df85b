"""Structured logs: request, conversation, turn and task ids on every line; never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid

import pytest
from celery import shared_task
from django.conf import settings as django_settings

from chatbots.secrets import SecretValue
from monitoring import selectors
from monitoring.logging import JsonFormatter, PlainFormatter, log_context_bound

pytestmark = pytest.mark.django_db

task_logger = logging.getLogger("monitoring.tests.task")


@shared_task(name="monitoring.tests.logging_task")
def logging_task(*args, **kwargs) -> None:
    task_logger.warning("inside the task")


@pytest.fixture
def json_lines():
    """What the configured console handler writes, as JSON: same filters, JSON formatter."""
    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]
    finally:
        root.removeHandler(handler)


def test_the_console_handler_keeps_the_secrets_filter_after_the_context_filter():
    handler = django_settings.LOGGING["handlers"]["console"]
    assert handler["filters"] == ["request_context", "redact_secrets"]
    # The client address is resolved first (config/client_address.py), then bound for the logs.
    assert django_settings.MIDDLEWARE[:2] == [
        "config.client_address.TrustedProxyMiddleware",
        "monitoring.logging.RequestContextMiddleware",
    ]


@pytest.mark.urls("monitoring.tests.urls")
def test_a_request_logs_json_with_its_request_id_and_echoes_it(client, json_lines):
    response = client.get("/api/test-log", headers={"X-Request-ID": "req-42.abc"})
    assert response["X-Request-ID"] == "req-42.abc"
    line = next(entry for entry in json_lines() if entry["logger"] == "monitoring.tests.view")
    assert line["request_id"] == "req-42.abc"
    assert line["level"] == "WARNING" and line["message"] == "handling a request"
    assert line["detail"] == "x" and "timestamp" in line


@pytest.mark.urls("monitoring.tests.urls")
def test_a_request_line_names_the_visitors_address_behind_a_trusted_proxy(
    client, json_lines, settings
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client.get("/api/test-log", REMOTE_ADDR="10.1.2.3", headers={"X-Forwarded-For": "203.0.113.5"})
    client.get("/api/test-log", REMOTE_ADDR="198.51.100.1", headers={"X-Forwarded-For": "1.2.3.4"})
    lines = [e for e in json_lines() if e["logger"] == "monitoring.tests.view"]
    assert [e.get("client") for e in lines] == ["203.0.113.5", "198.51.100.1"]


@pytest.mark.urls("monitoring.tests.urls")
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(client, json_lines):
    first = client.get("/api/test-log")
    second = client.get("/api/test-log", headers={"X-Request-ID": "evil\nINFO forged line"})
    ids = [first["X-Request-ID"], second["X-Request-ID"]]
    assert all(len(i) == 32 and i.isalnum() for i in ids) and ids[0] != ids[1]
    assert [e["request_id"] for e in json_lines() if e["logger"] == "monitoring.tests.view"] == ids


@pytest.mark.urls("monitoring.tests.urls")
def test_the_conversation_of_an_api_request_is_on_its_lines(client, json_lines):
    session = uuid.uuid4()
    client.get(f"/api/test-log/{session}")
    client.get("/api/test-log", headers={"X-Session-ID": "abc-session"})
    lines = [e for e in json_lines() if e["logger"] == "monitoring.tests.view"]
    assert [e.get("conversation_id") for e in lines] == [str(session), "abc-session"]


@pytest.mark.urls("monitoring.tests.urls")
def test_the_async_request_path_binds_and_echoes_the_request_id(json_lines):
    from django.test import AsyncClient

    response = asyncio.run(AsyncClient().get("/api/test-log", headers={"X-Request-ID": "async-1"}))
    assert response["X-Request-ID"] == "async-1"
    assert any(e.get("request_id") == "async-1" for e in json_lines())


@pytest.mark.urls("monitoring.tests.urls")
def test_no_configured_secret_reaches_a_log_line(client, json_lines, make_endpoint):
    key = "sk-proj-0123456789abcdefghSECRET"
    make_endpoint(name="Secret holder", api_key=SecretValue.from_plaintext(key))
    client.get("/api/test-log", {"text": f"key {key} leaked"})
    logging.getLogger("monitoring.tests").error("extra leak", extra={"payload": {"k": key}})
    try:
        raise ValueError(f"boom {key}")
    except ValueError:
        logging.getLogger("monitoring.tests").exception("with a traceback")
    output = json.dumps(json_lines())
    assert key not in output
    assert "leaked" in output and "with a traceback" in output and "ValueError" in output


def test_the_plain_format_appends_the_bound_ids():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    with log_context_bound(request_id="r-1", turn_id="t-9"):
        text = PlainFormatter("%(message)s").format(record)
    assert text == "hello [request_id=r-1 turn_id=t-9]"


def test_a_task_logs_with_its_task_id_and_the_turn_it_works_on(json_lines):
    turn_id = str(uuid.uuid4())
    logging_task.apply(kwargs={"turn_id": turn_id}, task_id="task-1")
    line = next(e for e in json_lines() if e["logger"] == "monitoring.tests.task")
    assert line["task_id"] == "task-1"
    assert line["task"] == "monitoring.tests.logging_task"
    assert line["turn_id"] == turn_id
    with log_context_bound():
        pass
    # The ids do not leak into what runs after the task.
    logging.getLogger("monitoring.tests.task").warning("after")
    assert "task_id" not in json_lines()[-1]


def test_a_published_task_carries_its_enqueue_time_and_request_id(lonely_broker):
    from config.celery import app

    with log_context_bound(request_id="req-7"), selectors.broker_connection() as connection:
        app.send_task("monitoring.tasks.cache_cleanup", queue="maintenance", connection=connection)
    raw = selectors.redis_client(lonely_broker).lindex("maintenance", -1)
    headers = json.loads(raw)["headers"]
    assert headers["request_id"] == "req-7"
    assert isinstance(headers["enqueued_at"], float)

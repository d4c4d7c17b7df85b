"""End to end: a failed turn's error-log row carries the id of the request that sent the message
(through the Celery task's headers into the worker's loop) and the traceback of the failure."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from monitoring.models import ErrorLog
from tests.e2e.client import post_message, ws_events
from tests.fakes.openai import FakeOpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

API_KEY = "sk-e2e-failure-0123456789"


def test_a_failed_turn_s_error_log_row_names_its_request_and_holds_its_traceback(stack):
    with FakeOpenAI() as server:
        server.scenario.update(status=401)
        bot = create_chatbot(public_id="failing-bot", with_main_flow=False)
        endpoint = create_endpoint(
            kind=AIEndpoint.Kind.OPENAI, base_url=f"{server.url}/v1", api_key=API_KEY
        )
        create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)

        reply = post_message(
            stack.base_url,
            "failing-bot",
            "Hello?",
            headers={"X-Request-ID": "req-e2e-failure-1"},
        )
        events = asyncio.run(ws_events(reply))

    assert events[-2]["event"] == "error" and events[-2]["data"]["code"] == "UPSTREAM_AUTH"
    # The row is written right after the end event went out.
    deadline = time.monotonic() + 10
    while not (entry := ErrorLog.objects.filter(turn_id=reply["turn_id"]).first()):
        assert time.monotonic() < deadline, "no error-log row for the failed turn"
        time.sleep(0.1)
    assert entry.request_id == "req-e2e-failure-1"
    assert "Traceback (most recent call last)" in entry.stack
    assert "UpstreamError" in entry.stack
    assert API_KEY not in entry.stack + entry.message + str(entry.context)

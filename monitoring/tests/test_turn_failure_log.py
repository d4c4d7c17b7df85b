"""A failed turn's error-log row leads an operator to the cause: the traceback of what failed it
(secrets masked) and the id of the request that started it, the id its log lines carry.

The turns run on the worker's real runtime, submitted the way the Celery task submits them:
from a thread that has the task's log ids bound.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from chatbots.models import AIEndpoint
from conversations.runner import turn_run
from conversations.runtime import get_runtime
from monitoring.logging import log_context_bound
from monitoring.models import ErrorLog
from monitoring.tests.factories import create_turn

pytestmark = pytest.mark.django_db(transaction=True)

API_KEY = "sk-proj-turnfailure0123456789"


def openai_turn(server, make_chatbot, make_endpoint, make_flow):
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.OPENAI, base_url=f"{server.url}/v1", api_key=API_KEY
    )
    bot = make_chatbot(with_main_flow=False)
    make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    return create_turn(chatbot=bot)


def run_for_request(turn, request_id: str) -> str:
    runtime = get_runtime()
    with log_context_bound(request_id=request_id, turn_id=str(turn.pk)):
        future = runtime.submit(turn_run(runtime, str(turn.pk)))
    return future.result(60)


def test_an_upstream_failure_is_logged_with_its_traceback_and_request_id(
    openai_server, make_chatbot, make_endpoint, make_flow
):
    openai_server.scenario.update(status=401, error_message=f"Incorrect API key {API_KEY}")
    turn = openai_turn(openai_server, make_chatbot, make_endpoint, make_flow)

    assert run_for_request(turn, "req-upstream-1") == "failed"

    entry = ErrorLog.objects.get(turn_id=turn.pk)
    assert (entry.category, entry.code) == ("upstream_ai", "UPSTREAM_AUTH")
    assert entry.request_id == "req-upstream-1"
    assert "Traceback (most recent call last)" in entry.stack
    # The AI client's own frames: where the refused request was made.
    assert "UpstreamError" in entry.stack and "aiclients/_http.py" in entry.stack
    assert "open_stream" in entry.stack
    assert API_KEY not in entry.stack + entry.message + str(entry.context)


def test_an_unexpected_failure_is_logged_with_the_traceback_that_explains_it(
    openai_server, make_chatbot, make_endpoint, make_flow, settings
):
    turn = openai_turn(openai_server, make_chatbot, make_endpoint, make_flow)
    # The key that encrypted the endpoint's API key is gone: the runner cannot read it.
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    assert run_for_request(turn, "req-internal-2") == "failed"

    entry = ErrorLog.objects.get(turn_id=turn.pk)
    assert entry.code == "INTERNAL_ERROR"
    assert entry.request_id == "req-internal-2"
    assert "SecretDecryptionError" in entry.stack
    assert "conversations/runner.py" in entry.stack
    assert openai_server.requests == []


def test_a_turn_that_failed_without_an_exception_has_no_made_up_stack(
    openai_server, make_chatbot, make_endpoint, make_flow, settings
):
    settings.TURN_TOTAL_TIMEOUT = 1
    openai_server.scenario.update(delay_before_headers=5)
    turn = openai_turn(openai_server, make_chatbot, make_endpoint, make_flow)

    assert run_for_request(turn, "req-timeout-3") == "failed"

    entry = ErrorLog.objects.get(turn_id=turn.pk)
    assert entry.code == "TURN_TIMEOUT" and entry.request_id == "req-timeout-3"
    assert entry.stack == ""

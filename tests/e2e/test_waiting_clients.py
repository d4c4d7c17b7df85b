"""Clients waiting on slow answers hold no database connection (issue #18 item 4).

`POST /api/chat/message` waits for the answer. Before, each waiting call kept a pooled
database connection for its whole wait, so a handful of slow answers took all of a process's
DATABASE_POOL_MAX connections and every other customer got 503.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import Turn
from devstack.services import free_port
from tests.e2e.client import widget_headers
from tests.e2e.conftest import (
    ARTIFACTS,
    spawn_daphne,
    spawn_worker,
    stack_env,
    stop,
    wait_ready,
)
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAITERS = 50
POOL_MAX = 4
# A request waits this long for a pooled connection before its 503: long enough that a loaded
# machine serves 50 submits through 4 connections, far shorter than the answers' delay.
POOL_TIMEOUT = 5
ANSWER_DELAY = 20


def _session(base_url: str, chatbot_id: str, headers: dict) -> httpx.Response:
    return httpx.post(
        f"{base_url}/api/sessions",
        json={"chatbot_id": chatbot_id, "userId": "waiting"},
        headers=headers,
        timeout=60,
    )


def test_fifty_clients_waiting_for_slow_answers_do_not_starve_other_customers():
    limits = {
        "SESSION_CREATE_RATE_LIMIT": "100000/minute",
        "MESSAGE_RATE_LIMIT_PER_MINUTE": "100000",
        "CHAT_SYNC_TIMEOUT_SECONDS": str(ANSWER_DELAY * 4),
    }
    # Daphne gets the small pool; the worker (its own process) keeps the default.
    web_env = stack_env(
        DATABASE_POOL_MIN="1",
        DATABASE_POOL_MAX=str(POOL_MAX),
        DATABASE_POOL_TIMEOUT=str(POOL_TIMEOUT),
        **limits,
    )
    worker_env = stack_env(**limits)
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    daphne_log = ARTIFACTS / f"waiting-daphne-{port}.log"
    worker_log = ARTIFACTS / f"waiting-worker-{port}.log"
    with FakeFlowise() as flowise:
        flowise.scenario.delay_before_first_token = ANSWER_DELAY
        slow = create_chatbot(public_id="slow-answers", with_main_flow=False)
        endpoint = create_endpoint(
            kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url, read_timeout=ANSWER_DELAY * 3
        )
        create_flow(chatbot=slow, name="main", is_main=True, endpoint=endpoint)
        other = create_chatbot(public_id="other-shop")
        slow_headers = widget_headers(slow.public_id)
        other_headers = widget_headers(other.public_id)

        daphne = spawn_daphne(port, web_env, daphne_log)
        worker = spawn_worker(f"waiting-{port}", "turns,celery", WAITERS, worker_env, worker_log)
        try:
            wait_ready(port, daphne_log, worker_log)
            base = f"http://127.0.0.1:{port}"
            sessions = [_session(base, slow.public_id, slow_headers) for _ in range(WAITERS)]
            assert [s.status_code for s in sessions] == [201] * WAITERS

            def wait_for_answer(session: dict) -> tuple[int, float]:
                response = httpx.post(
                    f"{base}/api/chat/message",
                    json={"message": "Where is my parcel?"},
                    headers={
                        "X-Session-ID": session["sessionId"],
                        "Authorization": f"Bearer {session['conversation_token']}",
                    },
                    timeout=ANSWER_DELAY * 6,
                )
                return response.status_code, time.monotonic()

            with ThreadPoolExecutor(WAITERS) as pool:
                waiting = [pool.submit(wait_for_answer, s.json()) for s in sessions]
                deadline = time.monotonic() + ANSWER_DELAY
                while Turn.objects.count() < WAITERS and time.monotonic() < deadline:
                    time.sleep(0.2)
                all_waiting = Turn.objects.count()

                # Other customers of another shop, while all 50 wait: start, read, message.
                others = []
                for _ in range(5):
                    started = _session(base, other.public_id, other_headers)
                    others.append(("POST /api/sessions", started.status_code))
                    if started.status_code != 201:
                        continue
                    session = started.json()
                    auth = {"Authorization": f"Bearer {session['conversation_token']}"}
                    history = httpx.get(
                        f"{base}/api/sessions/{session['sessionId']}/history",
                        headers=auth,
                        timeout=60,
                    )
                    others.append(("GET history", history.status_code))
                others_done = time.monotonic()
                answers = [future.result() for future in waiting]
        finally:
            stop(daphne, worker)

    assert others == [("POST /api/sessions", 201), ("GET history", 200)] * 5
    assert all_waiting == WAITERS
    # The waiters were still waiting while the others were served, and then got their answers.
    assert min(at for _status, at in answers) > others_done
    assert [status for status, _at in answers] == [200] * WAITERS
    assert Turn.objects.filter(status=Turn.Status.COMPLETED).count() == WAITERS

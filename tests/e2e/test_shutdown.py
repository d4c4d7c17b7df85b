"""SIGTERM while answering: the worker finishes the running turn before it exits, and a
client cut off by a stopping ASGI server resumes elsewhere with nothing lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import urllib.parse

import pytest

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import Turn
from devstack.services import free_port
from tests.e2e.client import answer_text, assert_gapless, post_message, ws_events
from tests.e2e.conftest import ARTIFACTS, spawn_daphne, spawn_worker, wait_ready
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def private_pair(stack) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    """A Daphne and a worker of their own, on their own broker database, so that only they
    handle this test's turns."""
    parsed = urllib.parse.urlparse(stack.env["CELERY_BROKER_URL"])
    env = {**stack.env, "CELERY_BROKER_URL": urllib.parse.urlunparse(parsed._replace(path="/13"))}
    port = free_port()
    daphne_log, worker_log = ARTIFACTS / "shutdown-daphne.log", ARTIFACTS / "shutdown-worker.log"
    daphne = spawn_daphne(port, env, daphne_log)
    worker = spawn_worker(f"shutdown-{port}", "turns", 4, env, worker_log)
    wait_ready(port, daphne_log, worker_log)
    return daphne, worker, f"http://127.0.0.1:{port}"


def test_sigterm_lets_the_running_turn_finish_and_clients_resume_elsewhere(stack):
    with FakeFlowise() as flowise:
        bot = create_chatbot(public_id="drain-bot", with_main_flow=False)
        endpoint = create_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url)
        create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        answer = " ".join(f"w{i}" for i in range(60))
        flowise.scenario.update({"answer": answer, "tokens_per_second": 30})
        daphne, worker, base_url = private_pair(stack)
        try:
            reply = post_message(base_url, "drain-bot", "Tell me everything")
            # Watch through the private Daphne until a few tokens have arrived.
            seen = asyncio.run(ws_events(reply, stop_after_id=5))
            worker.send_signal(signal.SIGTERM)
            daphne.send_signal(signal.SIGTERM)
            # The client reconnects to another server (the shared stack) and resumes.
            resumed = {
                **reply,
                "websocket_url": reply["websocket_url"].replace(
                    base_url.replace("http", "ws"), stack.ws_url
                ),
            }
            seen += asyncio.run(ws_events(resumed, after=seen[-1]["id"], timeout=30))
            assert_gapless(seen)
            assert answer_text(seen) == answer
            turn = Turn.objects.get(pk=reply["turn_id"])
            assert turn.status == Turn.Status.COMPLETED
            assert turn.assistant_message.content == answer
            assert worker.wait(30) == 0
        finally:
            for proc in (daphne, worker):
                if proc.poll() is None:
                    proc.kill()

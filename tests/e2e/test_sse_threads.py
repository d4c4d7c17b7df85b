"""Server-Sent Events hold no thread per open stream (#22 item 2, "served asynchronously"):
50 streams following one slow answer leave Daphne's thread count where it was."""

from __future__ import annotations

import time
import urllib.parse

import httpx
import psutil
import pytest

from tests.e2e.client import post_message
from tests.e2e.conftest import ARTIFACTS, running_stack, stack_env
from tests.e2e.test_pipeline import flowise_bot
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STREAMS = 50


@pytest.fixture(scope="module")
def wide_sse_stack(django_db_setup, django_db_blocker):
    env = stack_env(SSE_MAX_STREAMS_PER_ADDRESS=str(STREAMS + 10), SSE_HEARTBEAT_SECONDS="1")
    with running_stack(env, ARTIFACTS, "sse-threads", "turns,celery", 4) as running:
        yield running


def daphne_of(stack) -> psutil.Process:
    port = urllib.parse.urlsplit(stack.base_url).port
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "daphne" in cmdline and f"tcp:port={port}:" in cmdline:
            return proc
    raise AssertionError(f"no Daphne on port {port}")


def test_fifty_open_event_streams_hold_no_thread_each(wide_sse_stack):
    with FakeFlowise() as flowise:
        flowise_bot(flowise)
        flowise.scenario.answer = " ".join(["slow"] * 100)
        flowise.scenario.tokens_per_second = 10
        reply = post_message(wide_sse_stack.base_url, "vinhuset", "Take your time")
        url = f"{wide_sse_stack.base_url}/api/stream-events/{reply['turn_id']}/sse"
        params = {"token": reply["conversation_token"]}
        daphne = daphne_of(wide_sse_stack)
        with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=STREAMS + 5)) as http:
            # One stream first, so the pools a stream uses (database pages, Redis) exist.
            first = http.send(http.build_request("GET", url, params=params), stream=True)
            opened = [(first, first.iter_raw())]
            next(opened[0][1])
            time.sleep(1)
            threads_before = daphne.num_threads()
            for _ in range(STREAMS - 1):
                response = http.send(http.build_request("GET", url, params=params), stream=True)
                assert response.status_code == 200
                chunks = response.iter_raw()  # kept: httpx closes the stream when collected
                next(chunks)  # the stream has started
                opened.append((response, chunks))
            time.sleep(1)
            threads_open = daphne.num_threads()
            for _, chunks in opened:
                next(chunks)  # every stream is still being fed
            for response, _ in opened:
                response.close()
    # Bounded pools may grow by a few threads; a thread per stream would add 49.
    assert threads_open - threads_before < 10, (threads_before, threads_open)

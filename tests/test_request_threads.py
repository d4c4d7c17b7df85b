"""Kept request threads (config/request_threads.py): each HTTP request's sync code runs on one
thread of its own, but threads are reused between requests instead of started per request."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished

from config.asgi import ApiASGIHandler
from config.request_threads import RequestThreads, release_current

pytestmark = pytest.mark.django_db(transaction=True)


def http_scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }


async def get(handler, path: str) -> int:
    communicator = ApplicationCommunicator(handler, http_scope(path))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=10)
    while True:
        message = await communicator.receive_output(timeout=10)
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=10)
    return start["status"]


def test_requests_one_after_another_reuse_one_thread():
    handler = ApiASGIHandler()
    handler.threads = RequestThreads(keep=4)
    seen: list[int] = []

    def finished(**kwargs):  # sent while closing the response: on the request's thread
        seen.append(threading.get_ident())

    request_finished.connect(finished)
    try:

        async def three():
            return [await get(handler, "/no-such-page/") for _ in range(3)]

        statuses = asyncio.run(three())
    finally:
        request_finished.disconnect(finished)
    assert statuses == [404, 404, 404]
    assert len(seen) == 3
    assert len(set(seen)) == 1, "each request started a thread of its own"
    assert seen[0] != threading.get_ident()  # not the event loop's thread
    assert handler.threads.made == 1


def test_concurrent_requests_each_have_their_own_thread_and_the_pool_keeps_at_most_keep():
    pool = RequestThreads(keep=2)
    gate = threading.Barrier(3, timeout=10)
    seen: list[int] = []

    def blocking_part():
        seen.append(threading.get_ident())
        gate.wait()  # all three requests' sync parts run at once, or this times out

    async def one_request():
        async with pool.context():
            await sync_to_async(blocking_part)()

    async def three():
        await asyncio.gather(*(one_request() for _ in range(3)))

    asyncio.run(three())
    assert len(set(seen)) == 3
    assert pool.made == 3
    assert len(pool._idle) == 2  # the third was shut down on its way back


def test_a_released_thread_goes_back_to_the_pool_and_later_sync_calls_still_run():
    pool = RequestThreads(keep=4)

    async def streaming_request():
        async with pool.context() as ctx:
            first = await sync_to_async(threading.get_ident)()
            release_current()  # as an SSE response does once it starts streaming
            assert pool._idle == [ctx.executor]
            later = await sync_to_async(threading.get_ident)()  # closing the response
            leftover = SyncToAsync.context_to_thread_executor[ctx.inner]
        return first, later, leftover

    first, later, leftover = asyncio.run(streaming_request())
    assert first != later
    assert pool._idle and len(pool._idle) == 1  # given back once, not twice
    assert leftover._shutdown  # asgiref's stand-in executor did not outlive the request

"""Threads for the sync parts of HTTP requests, kept between requests (docs/benchmarks.md).

Under ASGI, Django runs each request's sync code (every MiddlewareMixin middleware, a sync
view, closing the response) on a thread of the request's own: its handler enters an asgiref
ThreadSensitiveContext, and the first sync call in it starts a new one-thread executor, which is
shut down when the request ends. So every request started and stopped a thread; a profile of
Daphne at 200 streams put about a quarter of its busy samples in thread start-up (`Thread.__init__`
under `SyncToAsync.__call__`) during the burst of turn starts.

`RequestThreads` keeps those one-thread executors and hands one to each request through
ThreadSensitiveContext's `executor=` (asgiref's public way to say "use this executor; I own
it"). A request still has one thread to itself for as long as it runs; only the start-up is
saved. Django's thread-local database connection stays on the thread between requests, as under
a WSGI server; `request_finished` has already returned it to the pool (config/settings.py
DATABASE_POOL) or closed it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync, ThreadSensitiveContext


class RequestThreads:
    """Idle one-thread executors, at most `keep` of them; more are made when a burst needs them
    and shut down when they come back to a full pool."""

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()
        self.made = 0  # executors ever made (a test and the benchmark read it)

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.made += 1
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        executor._request_threads = self  # type: ignore[attr-defined]  # release_current's mark
        return executor

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)

    def context(self) -> _PooledContext:
        """`async with threads.context():` in place of `async with ThreadSensitiveContext():`."""
        return _PooledContext(self)


class _PooledContext:
    def __init__(self, pool: RequestThreads) -> None:
        self.pool = pool
        self.executor = pool.take()
        self.inner = ThreadSensitiveContext(executor=self.executor)

    async def __aenter__(self) -> _PooledContext:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        # Still ours unless release_current() handed it back early (a long-lived response);
        # then a sync call after that may have left an executor of asgiref's own here.
        current = SyncToAsync.context_to_thread_executor.get(self.inner)
        await self.inner.__aexit__(*exc)
        if current is self.executor:
            self.pool.give_back(self.executor)
        elif current is not None:
            current.shutdown(wait=False)


def release_current() -> None:
    """Let the current request's thread go while its response streams (SSE): nothing runs on it
    meanwhile. A sync call after this (closing the response) gets a fresh executor from asgiref,
    which goes away with the request."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    executor = SyncToAsync.context_to_thread_executor.pop(context, None) if context else None
    if executor is None:
        return
    pool = getattr(executor, "_request_threads", None)
    if pool is not None:
        pool.give_back(executor)
    else:
        executor.shutdown(wait=False)

"""One asyncio loop per worker process: every turn the process runs streams on it.

Celery's threads hand turns to this loop and wait. Sharing one loop means one pooled HTTP
client per AI endpoint, one Redis connection pool for publishing and one subscription for
cancel requests, instead of a new loop and connection per call (~2.5 ms against ~0.13 ms per
publish, DESIGN.md §4). Database work runs in a small thread pool beside the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from django.conf import settings
from django.db import close_old_connections

from aiclients.pool import make_async_client
from chatbots.config_types import EndpointConfig
from config.event_loop import loop_factory
from config.redis import new_async_redis

logger = logging.getLogger(__name__)

_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def _db_call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


class WorkerRuntime:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.name = f"{socket.gethostname()}:{self.pid}"
        # uvloop unless EVENT_LOOP=asyncio: the loop and socket transports in C (per-token cost).
        self.loop = loop_factory()()
        self.db_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.TURN_DB_THREADS, thread_name_prefix="turn-db"
        )
        self.clients: dict[tuple, httpx.AsyncClient] = {}
        self.cancel_waiters: dict[str, asyncio.Event] = {}
        self.cancel_reasons: dict[str, str] = {}
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="turn-loop", daemon=True)
        self.thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.redis = new_async_redis()
        from conversations import services, streaming

        self.event_writer = streaming.EventRowWriter(self.run_db, services.stream_rows_save_many)
        self.frame_writer = streaming.frame_writer_for_hosts(self.redis)
        self.loop.create_task(self._listen_for_cancels())
        self.loop.create_task(self._heartbeats())
        self._ready.set()
        self.loop.run_forever()

    async def run_db(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        # In the caller's context (as asyncio.to_thread does): the log ids bound for the turn
        # (request, task, turn) stay on the database thread's log lines and error-log rows.
        context = contextvars.copy_context()
        return await self.loop.run_in_executor(
            self.db_pool, functools.partial(context.run, _db_call, fn, args, kwargs)
        )

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        """Run `coro` on the loop with the calling thread's context variables (the Celery
        task's request, task and turn ids), which a task on another thread would not inherit."""
        values = list(contextvars.copy_context().items())
        return asyncio.run_coroutine_threadsafe(_with_context(values, coro), self.loop)

    def client_for(self, endpoint: EndpointConfig) -> httpx.AsyncClient:
        key = (
            endpoint["id"],
            endpoint["pool_size"],
            endpoint["connect_timeout"],
            endpoint["read_timeout"],
        )
        client = self.clients.get(key)
        if client is None:
            client = make_async_client(
                max_connections=endpoint["pool_size"],
                connect_timeout=endpoint["connect_timeout"],
                read_timeout=endpoint["read_timeout"],
                trust_env=settings.UPSTREAM_TRUST_ENV,
                lean=settings.UPSTREAM_TRANSPORT == "lean",
            )
            self.clients[key] = client
        return client

    def cancel_event(self, turn_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self.cancel_waiters[turn_id] = event
        return event

    def release(self, turn_id: str) -> None:
        self.cancel_waiters.pop(turn_id, None)
        self.cancel_reasons.pop(turn_id, None)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(settings.TURN_HEARTBEAT_SECONDS)
            with contextlib.suppress(Exception):  # beat_once logs; the next beat tries again
                await self.beat_once()

    async def beat_once(self) -> None:
        """Every running turn of this process tells the reaper it is alive, in one statement;
        a turn no longer running (reaped, or cancelled elsewhere) is stopped here."""
        from conversations.services import turns_heartbeat

        turn_ids = list(self.cancel_waiters)
        if not turn_ids:
            return
        try:
            ours = await self.run_db(turns_heartbeat, turn_ids=turn_ids)
        except Exception:
            logger.warning("heartbeat of %d turns failed", len(turn_ids), exc_info=True)
            raise
        for turn_id in turn_ids:
            waiter = self.cancel_waiters.get(turn_id)
            if turn_id not in ours and waiter is not None:
                waiter.set()

    async def _listen_for_cancels(self) -> None:
        from conversations.services import CANCEL_CHANNEL

        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CANCEL_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        payload = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    turn_id = payload.get("turn_id")
                    waiter = self.cancel_waiters.get(turn_id)
                    if waiter is not None:
                        self.cancel_reasons[turn_id] = payload.get("reason") or "cancelled"
                        waiter.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("cancel listener lost Redis; reconnecting", exc_info=True)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


async def _with_context(values: list[tuple[contextvars.ContextVar, Any]], coro: Coroutine) -> Any:
    # Runs as its own asyncio task, so these values are seen by this coroutine only.
    for var, value in values:
        var.set(value)
    return await coro


def get_runtime() -> WorkerRuntime:
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        with _runtime_lock:
            if _runtime is None or _runtime.pid != os.getpid():
                _runtime = WorkerRuntime()
    return _runtime

"""Which asyncio event loop our long-running loops use: uvloop by default, asyncio's own on
request (EVENT_LOOP=asyncio) or where uvloop is not installed.

Read from the environment, not Django's settings, because Daphne's loop is made when
`daphne.server` is imported, before Django is set up (config/daphne.py). The worker's
streaming loop (conversations/runtime.py) asks here too. uvloop runs the loop machinery and
socket transports in C (libuv); the profile it answers is in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

CHOICES = ("uvloop", "asyncio")


def event_loop_name() -> str:
    """EVENT_LOOP (uvloop or asyncio), falling back to asyncio when uvloop cannot be imported."""
    name = os.environ.get("EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if name not in CHOICES:
        raise ValueError(f"EVENT_LOOP must be one of {', '.join(CHOICES)}, not {name!r}")
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:  # e.g. Windows, where uvloop does not build
            return "asyncio"
    return name


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if event_loop_name() == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def install_policy() -> None:
    """Make asyncio.new_event_loop() build EVENT_LOOP's loop in this process."""
    if event_loop_name() == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

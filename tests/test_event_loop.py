"""EVENT_LOOP (config/event_loop.py): Daphne and the worker's streaming loop run on uvloop unless
told otherwise, and a wrong value stops the process instead of being ignored."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import uvloop

from config import event_loop


def test_uvloop_by_default_and_asyncio_on_request(monkeypatch):
    monkeypatch.delenv("EVENT_LOOP", raising=False)
    assert event_loop.loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("EVENT_LOOP", "asyncio")
    assert event_loop.loop_factory() is asyncio.new_event_loop


def test_a_wrong_value_is_refused(monkeypatch):
    monkeypatch.setenv("EVENT_LOOP", "tokio")
    with pytest.raises(ValueError, match="EVENT_LOOP must be one of uvloop, asyncio"):
        event_loop.loop_factory()


@pytest.mark.parametrize(
    ("name", "loop_class"), [("uvloop", "Loop"), ("asyncio", "_UnixSelectorEventLoop")]
)
def test_daphne_made_by_config_daphne_runs_on_the_chosen_loop(name, loop_class):
    """What `python -m config.daphne` does before Daphne's import makes the reactor's loop."""
    code = (
        "from config.event_loop import install_policy; install_policy(); "
        "import daphne.server; print(type(daphne.server.twisted_loop).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"EVENT_LOOP": name, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == loop_class


def test_the_worker_streaming_loop_uses_it():
    from conversations.runtime import get_runtime

    assert isinstance(get_runtime().loop, uvloop.Loop)

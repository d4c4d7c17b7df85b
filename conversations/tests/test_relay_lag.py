"""Frames that grow when the relay is behind (streaming.RelayLag): the coalescing interval
follows how late the worker's frame timers run, between STREAM_FRAME_INTERVAL_MS and
STREAM_FRAME_INTERVAL_MAX_MS, and the first token of a turn is never held."""

from __future__ import annotations

import asyncio
import time

import pytest

from conversations import streaming


@pytest.fixture
def intervals(settings):
    settings.STREAM_FRAME_INTERVAL_MS = 50
    settings.STREAM_FRAME_INTERVAL_MAX_MS = 100


def test_on_time_timers_keep_the_base_interval(intervals):
    lag = streaming.RelayLag()
    for _ in range(20):
        lag.observe(0.001)
    assert lag.interval() == pytest.approx(0.051, abs=0.001)


def test_late_timers_grow_frames_up_to_the_maximum_and_back(intervals):
    lag = streaming.RelayLag()
    for _ in range(30):
        lag.observe(0.030)
    assert lag.interval() == pytest.approx(0.080, abs=0.002)
    for _ in range(30):
        lag.observe(0.500)  # far behind: capped
    assert lag.interval() == pytest.approx(0.100)
    for _ in range(40):
        lag.observe(0.0)  # caught up
    assert lag.interval() < 0.051


def test_maximum_equal_to_the_base_turns_it_off(settings):
    settings.STREAM_FRAME_INTERVAL_MS = 50
    settings.STREAM_FRAME_INTERVAL_MAX_MS = 50
    lag = streaming.RelayLag()
    lag.observe(1.0)
    assert lag.interval() == pytest.approx(0.050)


class Frames:
    def __init__(self) -> None:
        self.sent: list[tuple[float, dict]] = []

    async def append(self, keys, args) -> None:
        import json

        self.sent.append((time.monotonic(), json.loads(args[2])))


def test_the_first_token_goes_at_once_and_later_ones_wait_the_grown_interval(intervals):
    async def run():
        streaming.relay_lag().lag = 0.040  # a loop running 40 ms late
        frames = Frames()

        async def save_rows(rows):
            return None

        publisher = streaming.TurnPublisher(
            turn_id="t", redis=None, save_rows=save_rows, frames=frames
        )
        started = time.monotonic()
        await publisher.token("first")
        await publisher.token(" second")
        await asyncio.sleep(0.2)
        await publisher.aclose()
        return started, frames.sent

    started, sent = asyncio.run(run())
    assert [env["data"]["text"] for _, env in sent] == ["first", " second"]
    assert sent[0][0] - started < 0.02
    assert sent[1][0] - sent[0][0] >= 0.085  # 50 ms + 40 ms of lag, not 50

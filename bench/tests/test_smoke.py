"""The benchmark's smoke run (`python -m bench --quick`, about a minute) in the suite: the bench
starts its own stack, and when the outbound guard landed it refused the bench's fake upstream
on 127.0.0.1 for weeks without any test noticing. This runs every scenario small and short
(results in bench/results/quick/, which git ignores) and checks that every stream got every
token, in order, without errors. It times nothing: figures come from full runs on a quiet
machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "bench" / "results" / "quick"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# What `./run test` points at the test session's Redis databases (the suite flushes 15, the
# broker is 14): the bench gets a Redis of its own instead, as `./run bench` does, so its
# turns cannot meet anything of the session's.
SESSION_ONLY = ("REDIS_URL", "CELERY_BROKER_URL", "TESTING", "TEST_DATABASE_NAME")


def _stream_runs(doc):
    """(run key, its stream figures) for every measured run anywhere in a results document."""
    if isinstance(doc, dict):
        if isinstance(doc.get("streams"), dict) and "tokens_expected" in doc["streams"]:
            yield doc["run"]["key"], doc["streams"]
            return
        for value in doc.values():
            yield from _stream_runs(value)


def test_the_quick_benchmark_runs_and_every_stream_gets_every_token():
    for old in QUICK.glob("*.json"):
        old.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in SESSION_ONLY},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for scenario in ("ttft", "streams", "flat", "polling"):
        doc = json.loads((QUICK / f"{scenario}.json").read_text())
        runs = dict(_stream_runs(doc))
        assert runs, f"no runs in {scenario}.json"
        for name, streams in runs.items():
            assert streams["errors"] == 0, (scenario, name, streams["error_examples"])
            assert streams["tokens_delivered"] == streams["tokens_expected"] > 0, (scenario, name)
            assert streams["duplicates"] == 0, (scenario, name)
            assert streams["streams_out_of_order"] == 0, (scenario, name)

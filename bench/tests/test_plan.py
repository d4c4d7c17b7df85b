"""The benchmark's command line and plan (nothing is started and nothing is timed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.runner import SCENARIOS, floor_of, make_plan

ROOT = Path(__file__).resolve().parents[2]


def test_quick_dry_run_prints_a_plan_with_every_scenario_and_starts_nothing():
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    plan = json.loads(out.stdout)["plan"]
    assert plan["quick"] is True
    assert plan["scenarios"] == list(SCENARIOS)
    assert plan["results_dir"].endswith("bench/results/quick")
    keys = [run["key"] for run in plan["runs"]]
    assert len(keys) == len(set(keys))
    assert {run["server"] for run in plan["runs"] if run["client"] == "relay"} == {
        "daphne",
        "uvicorn",
    }


def test_every_relay_run_of_the_full_plan_has_its_floor_run():
    plan = make_plan([], quick=False)
    results = {run.key: {} for run in plan.runs}
    relay = [run for run in plan.runs if run.client == "relay"]
    assert relay
    for run in relay:
        assert floor_of(results, run.key) is not None, run.key


def test_the_full_plan_runs_the_issue_s_stream_counts_at_50_tokens_per_second_for_10_seconds():
    plan = make_plan(["streams"], quick=False)
    relay = [r for r in plan.runs if r.client == "relay"]
    assert sorted(r.streams for r in relay) == [50, 100, 200, 500]
    assert {(r.tokens, r.tokens_per_second) for r in relay} == {(500, 50.0)}


def test_an_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        make_plan(["nonsense"], quick=True)

"""Percentiles, and a sampler of CPU and memory per process of the stack (psutil)."""

from __future__ import annotations

import math
import os
import threading
import time

import psutil


def percentiles(values: list[float], digits: int = 2) -> dict:
    """n, p50/p95/p99/max/mean of a sample (nearest-rank); empty sample -> n = 0 only."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], digits)

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }


def ratio(a: dict, b: dict, key: str) -> float | None:
    if not a.get("n") or not b.get("n") or not b.get(key):
        return None
    return round(a[key] / b[key], 1)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Sampler:
    """Samples each role's CPU (% of one core) and memory (PSS) every `interval` seconds.

    CPU is the change of each role's total CPU time between samples, counting the children a
    process has reaped: PostgreSQL's backends may live for one request only, and their time
    then shows in the postmaster's children times instead of being lost between samples.
    PostgreSQL is the benchmark's own server. The machine's total CPU is sampled too, so what
    the rest of the machine did shows.
    """

    def __init__(
        self,
        groups: dict[str, list[int]],
        *,
        postgres_pid: int | None = None,
        interval: float = 1.0,
    ) -> None:
        self.groups = groups
        self.postgres_pid = postgres_pid
        self.interval = interval
        self.samples: list[dict] = []
        self._procs: dict[int, psutil.Process] = {}
        self._last: dict[str, tuple[float, float]] = {}  # role -> (time, cpu seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
            except psutil.Error:
                return None
            self._procs[pid] = proc
        return proc

    def _pids(self) -> dict[str, list[int]]:
        groups = {role: list(pids) for role, pids in self.groups.items()}
        if self.postgres_pid:
            try:
                children = psutil.Process(self.postgres_pid).children()
            except psutil.Error:
                children = []
            groups["postgres"] = [self.postgres_pid] + [c.pid for c in children]
        return groups

    def _sample(self) -> dict:
        now = time.monotonic()
        row: dict = {"t": now, "system_cpu": psutil.cpu_percent(None), "roles": {}}
        for role, pids in self._pids().items():
            total = pss = 0.0
            for pid in pids:
                proc = self._proc(pid)
                if proc is None:
                    continue
                try:
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                    # PSS: shared pages (PostgreSQL's shared buffers) are split between
                    # the processes that map them instead of being counted once per process.
                    pss += proc.memory_full_info().pss
                except psutil.Error:
                    self._procs.pop(pid, None)
            last = self._last.get(role)
            self._last[role] = (now, total)
            cpu = 0.0
            if last is not None and now > last[0]:
                cpu = max(0.0, (total - last[1]) / (now - last[0]) * 100)
            row["roles"][role] = {"cpu": cpu, "pss_mib": pss / 2**20, "procs": len(pids)}
        return row

    def _run(self) -> None:
        psutil.cpu_percent(None)
        self._sample()  # primes the totals; this sample is not kept
        while not self._stop.wait(self.interval):
            self.samples.append(self._sample())

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.summary()

    def summary(self) -> dict:
        """Per role: mean and peak CPU (% of one core), peak PSS (MiB); machine CPU (% of all)."""
        roles: dict[str, dict] = {}
        for row in self.samples:
            for role, value in row["roles"].items():
                acc = roles.setdefault(role, {"cpu": [], "rss": [], "procs": []})
                acc["cpu"].append(value["cpu"])
                acc["rss"].append(value["pss_mib"])
                acc["procs"].append(value["procs"])
        out = {
            role: {
                "cpu_mean": round(sum(v["cpu"]) / len(v["cpu"]), 1),
                "cpu_max": round(max(v["cpu"]), 1),
                "pss_max_mib": round(max(v["rss"]), 1),
                "processes_max": max(v["procs"]),
                "cpu_seconds": round(sum(v["cpu"]) / 100 * self.interval, 2),
            }
            for role, v in roles.items()
            if v["cpu"]
        }
        system = [row["system_cpu"] for row in self.samples]
        ours = [sum(v["cpu"] for v in row["roles"].values()) for row in self.samples]
        cores = os.cpu_count() or 1
        return {
            "interval_s": self.interval,
            "samples": len(self.samples),
            "roles": out,
            "machine_cpu_mean_pct": round(sum(system) / len(system), 1) if system else None,
            # What processes outside the stack used (other engineers' test runs), in cores.
            "others_cpu_mean_cores": (
                round(
                    max(0.0, sum(system) / len(system) * cores / 100 - sum(ours) / len(ours) / 100),
                    2,
                )
                if system
                else None
            ),
        }

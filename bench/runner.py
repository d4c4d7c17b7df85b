"""The benchmark plan (scenarios -> runs) and its execution against a started stack."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from bench import analysis
from bench.client import FloorClient, RelayClient, Trace, poll_open_loop, token_texts
from bench.measure import Sampler, load_average, percentiles, ratio
from bench.stack import LOGS, PY, ROOT, Stack, StackConfig, dump, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("ttft", "streams", "flat", "polling", "index", "servers")
THINK_SECONDS = 0.3  # the fake's pause before its first token, like a model's time to think


@dataclass(frozen=True)
class Run:
    """One measured run. `client` is `relay` (through the product) or `floor` (the fake direct)."""

    kind: str  # streams | flat | polling
    client: str
    server: str = "daphne"
    streams: int = 1
    tokens: int = 500
    tokens_per_second: float = 50.0
    ramp_s: float = 2.0
    poll_rate: float = 0.0
    poll_s: float = 0.0

    @property
    def key(self) -> str:
        parts = [self.kind, self.client, self.server if self.client == "relay" else "fake"]
        parts += [f"n{self.streams}", f"t{self.tokens}", f"r{self.ramp_s:g}"]
        if self.poll_rate:
            parts.append(f"poll{self.poll_rate:g}x{self.poll_s:g}")
        return "-".join(parts)


@dataclass
class Plan:
    scenarios: list[str]
    quick: bool
    levels: list[int]
    runs: list[Run] = field(default_factory=list)
    index_args: list[str] = field(default_factory=list)
    results_dir: str = str(RESULTS)

    def as_dict(self) -> dict:
        return {
            "scenarios": self.scenarios,
            "quick": self.quick,
            "levels": self.levels,
            "results_dir": self.results_dir,
            "index_args": self.index_args,
            "runs": [{"key": r.key, **asdict(r)} for r in self.runs],
        }


def make_plan(scenarios: list[str], *, quick: bool, levels: list[int] | None = None) -> Plan:
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    scenarios = scenarios or list(SCENARIOS)
    levels = levels or ([50] if quick else [50, 100, 200, 500])
    seconds = 3 if quick else 10
    tokens = int(50 * seconds)
    ramp = 1.0 if quick else 2.0
    plan = Plan(
        scenarios=scenarios,
        quick=quick,
        levels=levels,
        results_dir=str(RESULTS / "quick" if quick else RESULTS),
    )
    runs: list[Run] = []

    def both(run: Run) -> None:
        for client in ("relay", "floor"):
            candidate = Run(**{**asdict(run), "client": client})
            if candidate.key not in {r.key for r in runs}:
                runs.append(candidate)

    for name in scenarios:
        if name == "ttft":
            # Unloaded: one stream at a time (not in quick mode). Loaded: scenario 2's 200 streams.
            if not quick:
                both(Run("streams", "relay", streams=30, tokens=10, ramp_s=15))
            both(Run("streams", "relay", streams=50 if quick else 200, tokens=tokens, ramp_s=ramp))
        elif name in ("streams", "servers"):
            for n in levels:
                both(Run("streams", "relay", streams=n, tokens=tokens, ramp_s=ramp))
            if name == "servers":
                for n in levels:
                    runs.append(
                        Run("streams", "relay", "uvicorn", streams=n, tokens=tokens, ramp_s=ramp)
                    )
        elif name == "flat":
            both(Run("flat", "relay", tokens=5_000 if quick else 30_000, tokens_per_second=0))
        elif name == "polling":
            both(
                Run(
                    "polling",
                    "relay",
                    streams=20 if quick else 100,
                    tokens=100 if quick else tokens,
                    ramp_s=ramp,
                    poll_rate=200,
                    poll_s=1 if quick else 6,
                )
            )
        elif name == "index":
            plan.index_args = (
                [
                    *("--calls", "5000", "--conversations", "500", "--incremental", "1000"),
                    *("--rounds", "1", "--queries", "20"),
                ]
                if quick
                else []
            )
    # Daphne first; the server is swapped once for the uvicorn runs.
    plan.runs = sorted(runs, key=lambda r: r.server == "uvicorn")  # stable: pairs stay together
    return plan


# --- execution -------------------------------------------------------------------------------------


def run_loop(coro):
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    except ImportError:
        return asyncio.run(coro)


def others_cpu_cores(stack: Stack, seconds: float = 3.0) -> float:
    """Cores used by processes outside the stack (other people's test runs), measured now."""
    mine = {os.getpid()}
    groups = list(stack.process_groups().values())
    if stack.postgres_pid():
        groups.append([stack.postgres_pid()])
    for pids in groups:
        for pid in pids:
            mine.add(pid)
            with contextlib.suppress(psutil.Error):
                mine.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    before = psutil.cpu_times()
    procs = {}
    for pid in mine:
        try:
            procs[pid] = psutil.Process(pid)
            procs[pid].cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(seconds)
    after = psutil.cpu_times()
    busy = (after.user + after.system + after.nice) - (before.user + before.system + before.nice)
    ours = 0.0
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            ours += proc.cpu_percent(None) / 100 * seconds
    return max(0.0, (busy - ours) / seconds)


def wait_until_quiet(stack: Stack, max_cores: float, timeout: float) -> dict:
    """Wait (up to `timeout` s) until the rest of the machine uses under `max_cores` cores."""
    started = time.monotonic()
    while True:
        others = others_cpu_cores(stack, 3.0 if timeout else 0.5)
        waited = time.monotonic() - started
        if others <= max_cores or waited >= timeout:
            return {
                "others_cores_before": round(others, 2),
                "waited_s": round(waited, 1),
                "quiet": others <= max_cores,
            }
        print(f"bench: machine busy ({others:.2f} cores used by others); waiting", flush=True)
        time.sleep(15)


class Executor:
    def __init__(
        self,
        plan: Plan,
        config: StackConfig,
        *,
        quiet_cores: float,
        quiet_timeout: float,
        profile: bool = False,
    ) -> None:
        self.plan = plan
        self.config = config
        self.stack = Stack(config)
        self.quiet_cores = quiet_cores
        self.quiet_timeout = quiet_timeout
        self.profile = profile
        self.results: dict[str, dict] = {}

    def execute(self) -> dict[str, dict]:
        if not self.plan.runs and "index" not in self.plan.scenarios:
            return {}
        index: tuple | None = None
        try:
            t_start = time.monotonic()
            if self.plan.runs:
                self.stack.start("daphne")
                if self.plan.quick and "index" in self.plan.scenarios:
                    # A smoke run times nothing that matters: the index runs alongside.
                    index = self._index_start()
                for run in self.plan.runs:
                    if run.client == "relay" and run.server != self.stack.server:
                        self.stack.start_server(run.server)
                    print(f"bench: {run.key} ({time.monotonic() - t_start:.0f}s)", flush=True)
                    self.results[run.key] = self.measure(run)
                    summary = self.results[run.key].get("summary", "")
                    print(f"bench:   {summary}", flush=True)
            if "index" in self.plan.scenarios:
                index = index or self._index_start()
                self.results["index"] = self._index_finish(index)
                index = None
        finally:
            if index is not None:
                self._index_finish(index, kill=True)
            self.stack.stop()
        return self.results

    def measure(self, run: Run) -> dict:
        quiet = (
            {"quiet": None}  # a smoke run measures nothing worth waiting for
            if self.plan.quick
            else wait_until_quiet(self.stack, self.quiet_cores, self.quiet_timeout)
        )
        self.stack.fake_configure(
            tokens=token_texts(run.tokens),
            tokens_per_second=run.tokens_per_second,
            delay_before_first_token=THINK_SECONDS,
        )
        load_before = load_average()
        started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        traces = [Trace(i) for i in range(run.streams)]
        timeout = (
            THINK_SECONDS
            + run.ramp_s
            + (run.tokens / run.tokens_per_second if run.tokens_per_second else 60)
            + 60
        )
        groups = self.stack.process_groups()
        sampler = Sampler(groups, postgres_pid=self.stack.postgres_pid(), interval=1.0)
        polls: list[tuple[float, float, int]] = []
        profiles: dict[str, str] = {}

        async def go() -> None:
            if run.client == "relay":
                client = RelayClient(
                    self.stack.base_url, self.stack.ws_url, self.stack.widget_key, run.streams + 50
                )
                await client.prepare(traces)
            else:
                client = FloorClient(self.stack.fake_url, run.streams + 50)
            t0 = time.monotonic() + (0.3 if self.plan.quick else 1.0)
            for tr in traces:
                tr.scheduled = t0 + tr.index * run.ramp_s / run.streams
            sampler.start()
            spies = self._start_profiles(run, profiles)
            work = [client.stream(tr, timeout) for tr in traces]
            if run.poll_rate:
                work.append(self._poll(run, client, traces, t0, polls))
            try:
                await asyncio.gather(*work)
            finally:
                sampler.stop()
                for spy in spies:
                    spy.wait()
                await client.aclose()

        wall = time.monotonic()
        run_loop(go())
        wall = time.monotonic() - wall
        if run.client == "relay":
            self._wait_turns_finished([tr.turn_id for tr in traces if tr.turn_id])
        emissions = self.stack.fake_emissions()
        requests = self.stack.fake_requests()
        created = (
            self.stack.turn_created([tr.turn_id for tr in traces if tr.turn_id])
            if run.client == "relay"
            else None
        )
        out: dict = {
            "run": {"key": run.key, **asdict(run), "think_s": THINK_SECONDS},
            "started_at": started_at,
            "duration_s": round(wall, 1),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            **quiet,
        }
        if run.kind == "flat":
            out["throughput"] = analysis.throughput(traces[0], emissions)
            out["streams"] = analysis.analyze(
                traces,
                emissions=emissions,
                requests=requests,
                tokens_per_stream=run.tokens,
                turn_created=created,
                relay=run.client == "relay",
            )
            tp = out["throughput"]
            out["summary"] = (
                f"{tp.get('tokens_per_s')} tokens/s at the client "
                f"(upstream {tp.get('upstream_tokens_per_s')}/s), "
                f"{out['streams']['delivered_pct']}% delivered"
            )
        else:
            out["streams"] = analysis.analyze(
                traces,
                emissions=emissions,
                requests=requests,
                tokens_per_stream=run.tokens,
                turn_created=created,
                relay=run.client == "relay",
            )
            s = out["streams"]
            out["summary"] = (
                f"{s['delivered_pct']}% delivered ({s['duplicates']} dup, "
                f"{s['streams_out_of_order']} reordered, {s['errors']} errors), "
                f"delay p50 {s['emission_to_receipt_ms'].get('p50')} "
                f"p99 {s['emission_to_receipt_ms'].get('p99')} ms, "
                f"ttft p50 {s['ttft_added_ms'].get('p50')} p99 {s['ttft_added_ms'].get('p99')} ms, "
                f"peak {s['peak_concurrent_upstream_streams']} streams"
            )
        if polls:
            latencies = [(done - scheduled) * 1000 for scheduled, done, status in polls]
            statuses: dict[str, int] = {}
            for _, _, status in polls:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            span = max(d for _, d, _ in polls) - min(s for s, _, _ in polls)
            out["polling"] = {
                "requests": len(polls),
                "target_rate": run.poll_rate,
                "achieved_rate": round(len(polls) / span, 1) if span else None,
                "statuses": statuses,
                "latency_ms": percentiles(latencies),
            }
            out["summary"] += (
                f"; polling p50 {out['polling']['latency_ms'].get('p50')} "
                f"p99 {out['polling']['latency_ms'].get('p99')} ms {statuses}"
            )
        out["resources"] = sampler.summary()
        delivered = out["streams"]["tokens_delivered"]
        if delivered:
            # CPU per token barely depends on what else the machine runs, unlike latency: it
            # says how many cores a given load needs.
            roles = out["resources"]["roles"]
            per_k = {
                role: round(1000 * r["cpu_seconds"] / delivered * 1000, 1)
                for role, r in roles.items()
            }
            stack_roles = [r for r in per_k if r not in ("client", "fake-flowise")]
            out["cpu_ms_per_1000_tokens"] = per_k
            out["stack_cores_for_500_streams"] = round(
                sum(per_k[r] for r in stack_roles) / 1000 * 500 * 50 / 1000, 2
            )
        if profiles:
            from bench.profiles import summarize

            out["profiles"] = {
                role: {"file": path, **summarize(ROOT / path)}
                for role, path in profiles.items()
                if (ROOT / path).exists()
            }
        return out

    async def _poll(self, run: Run, client, traces: list[Trace], t0: float, polls: list) -> None:
        # Starts once every stream has been asked for, so it polls turns that are streaming.
        start_at = t0 + run.ramp_s + THINK_SECONDS + 0.5
        if run.client == "relay":
            after: dict[str, int] = {}

            def request(k: int) -> tuple[str, dict]:
                live = [tr for tr in traces if tr.turn_id] or traces
                tr = live[k % len(live)]
                url = (
                    f"{self.stack.base_url}/api/stream-events/{tr.turn_id}"
                    f"?after={after.get(tr.turn_id, 0)}"
                )
                return url, {"Authorization": f"Bearer {tr.conversation_token}"}

            def on_body(k: int, body: dict) -> None:
                live = [tr for tr in traces if tr.turn_id] or traces
                after[live[k % len(live)].turn_id] = body.get("last_event_id", 0)

            await asyncio.sleep(0)
            polls.extend(
                await poll_open_loop(
                    client.http,
                    rate=run.poll_rate,
                    duration=run.poll_s,
                    start_at=start_at,
                    request=request,
                    on_body=on_body,
                )
            )
        else:
            polls.extend(
                await poll_open_loop(
                    client.http,
                    rate=run.poll_rate,
                    duration=run.poll_s,
                    start_at=start_at,
                    request=lambda k: (f"{self.stack.fake_url}/api/v1/ping", {}),
                )
            )

    def _start_profiles(self, run: Run, profiles: dict) -> list[subprocess.Popen]:
        """py-spy on the ASGI server and the first worker during the biggest relay run."""
        if not self.profile or run.client != "relay" or run.kind != "streams":
            return []
        if run.streams != max(self.plan.levels):
            return []
        seconds = max(3, int(run.ramp_s + run.tokens / max(run.tokens_per_second, 1)))
        spies = []
        for role, proc in (
            ("asgi", self.stack.procs.get("asgi-0")),
            ("worker-0", self.stack.procs.get("worker-0")),
        ):
            if proc is None:
                continue
            path = Path(self.plan.results_dir) / "profiles" / f"{run.key}-{role}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            spies.append(
                subprocess.Popen(
                    [
                        str(Path(PY).parent / "py-spy"),
                        "record",
                        "-p",
                        str(proc.pid),
                        "-d",
                        str(seconds),
                        "-r",
                        "100",
                        "-f",
                        "raw",
                        "--nonblocking",
                        "--gil",
                        "-o",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            profiles[role] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        return spies

    def _wait_turns_finished(self, turn_ids: list[str], timeout: float = 60) -> None:
        """Every turn stored its answer before the next run starts (no overlap between runs)."""
        import psycopg

        deadline = time.monotonic() + timeout
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while time.monotonic() < deadline:
                left = conn.execute(
                    "SELECT count(*) FROM conversations_turn WHERE id = ANY(%s::uuid[])"
                    " AND status IN ('pending', 'running')",
                    [turn_ids],
                ).fetchone()[0]
                if not left:
                    return
                time.sleep(0.2)

    def _index_start(self) -> tuple:
        """Scenario 5: the analytics engineer's benchmark, run as it is (its own database)."""
        module = ROOT / "bench" / "conversation_index.py"
        if not module.exists():
            return ("skipped", "bench/conversation_index.py does not exist")
        from devstack.services import ensure_services

        services = ensure_services(ROOT / ".data") if not os.environ.get("DATABASE_URL") else None
        output = Path(self.plan.results_dir) / "conversation_index.json"
        log = LOGS / "conversation_index.log"
        LOGS.mkdir(parents=True, exist_ok=True)
        cmd = [PY, "-m", "bench.conversation_index", *self.plan.index_args, "--output", str(output)]
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        return (proc, services, output, log, time.monotonic())

    def _index_finish(self, index: tuple, *, kill: bool = False) -> dict:
        if index[0] == "skipped":
            return {"skipped": index[1]}
        proc, services, output, log, started = index
        try:
            if kill and proc.poll() is None:
                proc.terminate()
            proc.wait()
        finally:
            if services is not None:
                services.stop()
        result = {"exit_code": proc.returncode, "duration_s": round(time.monotonic() - started, 1)}
        if output.exists() and proc.returncode == 0:
            result["figures"] = json.loads(output.read_text())
        else:
            result["log_tail"] = log.read_text(errors="replace")[-2000:]
        return result


# --- assembling the scenario files -----------------------------------------------------------------


def floor_of(results: dict, key: str) -> dict | None:
    parts = key.split("-")
    if len(parts) < 3 or parts[1] != "relay":
        return None
    return results.get("-".join([parts[0], "floor", "fake", *parts[3:]]))


def with_ratios(relay: dict, floor: dict | None) -> dict:
    if floor is None:
        return {}
    rs, fs = relay["streams"], floor["streams"]
    out = {}
    for metric in ("emission_to_receipt_ms", "ttft_added_ms", "platform_added_client_ms"):
        out[metric] = {p: ratio(rs[metric], fs[metric], p) for p in ("p50", "p95", "p99")}
    return out


def scenario_files(plan: Plan, results: dict[str, dict], meta: dict) -> dict[str, dict]:
    """One JSON document per scenario: its runs, each relay run beside its floor and ratios."""
    files: dict[str, dict] = {}

    def pair(key: str) -> dict | None:
        relay = results.get(key)
        if relay is None:
            return None
        floor = floor_of(results, key)
        return {"relay": relay, "floor": floor, "ratio_to_floor": with_ratios(relay, floor)}

    relay_streams = [r for r in plan.runs if r.kind == "streams" and r.client == "relay"]
    for name in plan.scenarios:
        doc: dict = {"scenario": name, **meta}
        if name == "ttft":
            alone = next((r.key for r in relay_streams if r.tokens < 50), None)
            doc["unloaded"] = pair(alone) if alone else None
            n = 50 if plan.quick else 200
            doc["loaded"] = pair(
                next(
                    r.key
                    for r in relay_streams
                    if r.streams == n and r.server == "daphne" and r.tokens >= 50
                )
            )
        elif name == "streams":
            doc["levels"] = {
                str(r.streams): pair(r.key)
                for r in relay_streams
                if r.server == "daphne" and r.tokens >= 50 and r.streams in plan.levels
            }
        elif name == "servers":
            doc["daphne"] = {
                str(r.streams): pair(r.key)
                for r in relay_streams
                if r.server == "daphne" and r.tokens >= 50 and r.streams in plan.levels
            }
            doc["uvicorn"] = {
                str(r.streams): pair(r.key) for r in relay_streams if r.server == "uvicorn"
            }
        elif name in ("flat", "polling"):
            key = next(r.key for r in plan.runs if r.kind == name and r.client == "relay")
            doc["run"] = pair(key)
        elif name == "index":
            doc["index"] = results.get("index")
        files[name] = doc
    return files


def write_results(plan: Plan, results: dict[str, dict], config: StackConfig) -> list[Path]:
    meta = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": plan.quick,
        "machine": machine_info(),
        "stack": config.as_dict(),
        "think_s": THINK_SECONDS,
    }
    out_dir = Path(plan.results_dir)
    paths = []
    for name, doc in scenario_files(plan, results, meta).items():
        if name == "index" and doc.get("index") is None:
            continue
        path = out_dir / f"{name}.json"
        dump(path, doc)
        paths.append(path)
    return paths

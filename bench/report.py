"""docs/benchmarks.md and the plots, rebuilt from bench/results/*.json (`python -m bench --report`).

The narrative parts that need a person (what limits us, what to change) live in
bench/findings.md and are copied in as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.runner import RESULTS
from bench.stack import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
FINDINGS = Path(__file__).resolve().parent / "findings.md"
PLOTS = RESULTS  # PNGs sit beside the JSON they are drawn from

# Issue #23's targets (same scenarios, same 2-core machine, load client beside the stack).
TARGETS = {
    "stack_cpu_ms_per_1000_tokens": 100.0,  # at 200 streams, every process of ours
    "delay_p99_ms": 100.0,  # 200 streams at 50 tokens/s, whole run, start burst included
    "ttft_p50_ms": 10.0,  # relay-added, 200 streams
    "ttft_p99_ms": 50.0,
    "platform_p50_ms": 15.0,  # one stream
    "platform_p99_ms": 50.0,
    "platform_loaded_p50_ms": 50.0,  # 200 streams starting within 2 s
    "polling_p99_ms": 50.0,  # 200 polls/s during 100 streams
    "index_p95_ms": 10.0,  # every list and search through the selector, 1M calls
    "flat_tokens_per_s": 5000,
    "streams": 500,  # zero loss; refused requests are clean 503s
}
NOT_OURS = ("client", "fake-flowise")


def stack_cpu_per_1000(level: dict | None) -> float | None:
    """CPU ms per 1,000 tokens of every process of the stack (ASGI, workers, Redis,
    PostgreSQL), not the load client or the fake."""
    per = _g(level, "relay", "cpu_ms_per_1000_tokens")
    if not per:
        return None
    return round(sum(v for role, v in per.items() if role not in NOT_OURS), 1)


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _g(d: dict | None, *keys, default=None):
    for key in keys:
        if not isinstance(d, dict) or key not in d or d[key] is None:
            return default
        d = d[key]
    return d


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def _ok(good: bool | None) -> str:
    return "–" if good is None else ("met" if good else "**missed**")


def _pct_row(label: str, stats: dict | None, floor: dict | None = None) -> str:
    cells = [_fmt(_g(stats, p)) for p in ("p50", "p95", "p99", "max")]
    floor_cells = [_fmt(_g(floor, p)) for p in ("p50", "p99")] if floor is not None else []
    ratios = []
    if floor is not None:
        for p in ("p50", "p99"):
            a, b = _g(stats, p), _g(floor, p)
            ratios.append(f"{a / b:,.0f}×" if a is not None and b else "–")
    return "| " + " | ".join([label, _fmt(_g(stats, "n")), *cells, *floor_cells, *ratios]) + " |"


PCT_HEAD = (
    "| | n | p50 | p95 | p99 | max | floor p50 | floor p99 | × floor p50 | × floor p99 |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)
PCT_HEAD_NOFLOOR = "| | n | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|"


# --- plots -------------------------------------------------------------------------------------------


def _plots(streams: dict | None, servers: dict | None, ttft: dict | None) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return []
    made = []
    series = []
    if streams:
        series.append(("Daphne", streams.get("levels") or {}))
    elif servers:
        series.append(("Daphne", servers.get("daphne") or {}))
    if servers and servers.get("uvicorn"):
        label = "uvicorn" if not streams else "uvicorn (its own run)"
        series.append((label, servers["uvicorn"]))
    if series:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        floor_levels: dict[int, dict] = {}
        for (name, levels), color in zip(series, ("tab:blue", "tab:orange"), strict=False):
            xs = sorted(int(n) for n in levels if levels[n])
            for pct, style in (("p50", "--"), ("p99", "-")):
                ys = [
                    _g(levels[str(n)], "relay", "streams", "emission_to_receipt_ms", pct)
                    for n in xs
                ]
                ax.plot(xs, ys, style, marker="o", color=color, label=f"{name} {pct}")
            for n in xs:
                if _g(levels[str(n)], "floor"):
                    floor_levels[n] = levels[str(n)]["floor"]
        xs = sorted(floor_levels)
        for pct, style in (("p50", "--"), ("p99", "-")):
            ys = [_g(floor_levels[n], "streams", "emission_to_receipt_ms", pct) for n in xs]
            ax.plot(xs, ys, style, marker="s", color="tab:gray", label=f"floor {pct}")
        ax.axhline(TARGETS["delay_p99_ms"], color="tab:red", lw=0.8, ls=":", label="target p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(xs or [50, 100, 200, 500])
        ax.set_xticklabels([str(x) for x in (xs or [50, 100, 200, 500])])
        ax.set_xlabel("concurrent streams (50 tokens/s each)")
        ax.set_ylabel("upstream emission → client receipt (ms)")
        ax.set_title("Token delay through the relay vs reading the upstream directly")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = PLOTS / "streams_delay.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)
    levels = _g(streams, "levels") or _g(servers, "daphne") or {}
    if levels:
        xs = sorted(int(n) for n in levels if levels[n])
        roles = ["daphne", "worker-0", "worker-1", "redis", "postgres", "fake-flowise", "client"]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        bottom = [0.0] * len(xs)
        for role in roles:
            vals = [
                (_g(levels[str(n)], "relay", "resources", "roles", role, "cpu_mean") or 0) / 100
                for n in xs
            ]
            if not any(vals):
                continue
            ax.bar([str(x) for x in xs], vals, bottom=bottom, label=role)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.axhline(2.0, color="tab:red", lw=0.8, ls=":", label="2 cores")
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("CPU (cores, mean over the run)")
        ax.set_title("Where the CPU goes (Daphne stack)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = PLOTS / "streams_cpu.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)
    if ttft:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        bars = []
        for label, part, metric in (
            ("relay-added TTFT, 1 stream", "unloaded", "ttft_added_ms"),
            ("relay-added TTFT, 200 streams", "loaded", "ttft_added_ms"),
            ("platform-added, 1 stream", "unloaded", "platform_added_client_ms"),
            ("platform-added, 200 streams", "loaded", "platform_added_client_ms"),
        ):
            bars.append(
                (
                    label,
                    [_g(ttft, part, "relay", "streams", metric, p) or 0 for p in ("p50", "p99")],
                    [_g(ttft, part, "floor", "streams", metric, p) or 0 for p in ("p50", "p99")],
                )
            )
        ys = range(len(bars))
        ax.barh(
            [y + 0.2 for y in ys],
            [b[1][1] for b in bars],
            0.4,
            color="tab:blue",
            alpha=0.35,
            label="relay p99",
        )
        ax.barh(
            [y + 0.2 for y in ys], [b[1][0] for b in bars], 0.4, color="tab:blue", label="relay p50"
        )
        ax.barh(
            [y - 0.2 for y in ys],
            [b[2][1] for b in bars],
            0.4,
            color="tab:gray",
            alpha=0.35,
            label="floor p99",
        )
        ax.barh(
            [y - 0.2 for y in ys], [b[2][0] for b in bars], 0.4, color="tab:gray", label="floor p50"
        )
        ax.set_yticks(list(ys))
        ax.set_yticklabels([b[0] for b in bars], fontsize=8)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("ms")
        ax.set_title("Time to first token added by us")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = PLOTS / "ttft.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)
    return made


# --- the document -------------------------------------------------------------------------------------


def _resources_table(levels: dict) -> list[str]:
    roles: list[str] = []
    for level in levels.values():
        for role in _g(level, "relay", "resources", "roles", default={}) or {}:
            if role not in roles:
                roles.append(role)
    xs = sorted(int(n) for n in levels if levels[n])
    lines = [
        "| process | " + " | ".join(f"{n} streams: CPU mean / max, PSS" for n in xs) + " |",
        "|---|" + "---|" * len(xs),
    ]
    for role in roles:
        cells = []
        for n in xs:
            r = _g(levels[str(n)], "relay", "resources", "roles", role)
            cells.append(
                f"{_fmt(_g(r, 'cpu_mean'))}% / {_fmt(_g(r, 'cpu_max'))}%, "
                f"{_fmt(_g(r, 'pss_max_mib'))} MiB"
                if r
                else "–"
            )
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    machine = []
    for n in xs:
        res = _g(levels[str(n)], "relay", "resources")
        machine.append(
            f"{_fmt(_g(res, 'machine_cpu_mean_pct'))}% (others {_fmt(_g(res, 'others_cpu_mean_cores'))} cores)"
        )
    lines.append("| whole machine | " + " | ".join(machine) + " |")
    return lines


def _cpu_per_token_table(levels: dict) -> list[str]:
    xs = sorted(int(n) for n in levels if _g(levels, n, "relay", "cpu_ms_per_1000_tokens"))
    if not xs:
        return []
    roles: list[str] = []
    for n in xs:
        for role in levels[str(n)]["relay"]["cpu_ms_per_1000_tokens"]:
            if role not in roles:
                roles.append(role)
    lines = [
        "| CPU ms per 1,000 tokens delivered | " + " | ".join(f"{n} streams" for n in xs) + " |",
        "|---|" + "---|" * len(xs),
    ]
    for role in roles:
        cells = [_fmt(_g(levels, str(n), "relay", "cpu_ms_per_1000_tokens", role)) for n in xs]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    lines.append(
        "| **stack cores for 500 streams × 50 tokens/s** (Daphne/uvicorn, workers, Redis, "
        "PostgreSQL) | "
        + " | ".join(_fmt(_g(levels, str(n), "relay", "stack_cores_for_500_streams")) for n in xs)
        + " |"
    )
    return lines


def _streams_table(levels: dict, name: str) -> list[str]:
    lines = [
        f"| {name}: streams | peak concurrent | delivered | dup | reordered | errors "
        "| delay p50 | delay p99 | floor p50 | floor p99 | TTFT added p50 / p99 | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted(int(k) for k in levels if levels[k]):
        lv = levels[str(n)]
        s = _g(lv, "relay", "streams") or {}
        f = _g(lv, "floor", "streams") or {}
        lines.append(
            f"| {n} | {_fmt(s.get('peak_concurrent_upstream_streams'))} "
            f"| {_fmt(s.get('tokens_delivered'))} / {_fmt(s.get('tokens_expected'))} "
            f"({_fmt(s.get('delivered_pct'))}%) | {_fmt(s.get('duplicates'))} "
            f"| {_fmt(s.get('streams_out_of_order'))} | {_fmt(s.get('errors'))} "
            f"| {_fmt(_g(s, 'emission_to_receipt_ms', 'p50'))} ms "
            f"| {_fmt(_g(s, 'emission_to_receipt_ms', 'p99'))} ms "
            f"| {_fmt(_g(f, 'emission_to_receipt_ms', 'p50'))} ms "
            f"| {_fmt(_g(f, 'emission_to_receipt_ms', 'p99'))} ms "
            f"| {_fmt(_g(s, 'ttft_added_ms', 'p50'))} / {_fmt(_g(s, 'ttft_added_ms', 'p99'))} ms "
            f"| {_fmt(_g(lv, 'relay', 'load_average_before', default=[None])[0])} |"
        )
    return lines


def _targets_table(ttft, levels, flat, polling, index) -> list[str]:
    def meets(value, limit, *, above=False):
        if value is None:
            return None
        return value >= limit if above else value <= limit

    t = TARGETS
    cpu = {n: stack_cpu_per_1000(levels.get(n)) for n in sorted(levels, key=int)}
    s200 = _g(levels, "200", "relay", "streams") or {}
    s500 = _g(levels, "500", "relay", "streams") or {}
    loaded = _g(ttft, "loaded", "relay", "streams") or {}
    unloaded = _g(ttft, "unloaded", "relay", "streams") or {}
    poll = _g(polling, "run", "relay", "polling", "latency_ms") or {}
    flat_tp = _g(flat, "run", "relay", "throughput") or {}
    queries = _g(index, "index", "figures", "queries_ms") or {}
    by_query = queries.get("selector") or {}
    selector_p95 = [_g(v, "p95") for v in by_query.values() if isinstance(v, dict)]
    worst_index = max((v for v in selector_p95 if v is not None), default=None)
    refused = [e for e in s500.get("error_examples") or [] if e.startswith("POST")]
    clean_refusals = all("503" in e and "SERVICE_UNAVAILABLE" in e for e in refused)
    loss_500 = (
        s500.get("duplicates") == 0
        and s500.get("streams_out_of_order") == 0
        and s500.get("streams_with_id_gaps", 0) == 0
        if s500
        else None
    )
    rows = [
        (
            f"stack CPU ≤ {t['stack_cpu_ms_per_1000_tokens']:.0f} ms per 1,000 tokens at 200 "
            "streams (per level: " + ", ".join(f"{n}: {_fmt(v)}" for n, v in cpu.items()) + ")",
            f"{_fmt(cpu.get('200'))} ms",
            "",
            meets(cpu.get("200"), t["stack_cpu_ms_per_1000_tokens"]),
        ),
        (
            f"200 streams: p99 emission → receipt ≤ {t['delay_p99_ms']:.0f} ms, zero loss",
            f"{_fmt(_g(s200, 'emission_to_receipt_ms', 'p99'))} ms, "
            f"{_fmt(s200.get('delivered_pct'))}% delivered",
            f"{_fmt(_g(levels, '200', 'floor', 'streams', 'emission_to_receipt_ms', 'p99'))} ms",
            meets(_g(s200, "emission_to_receipt_ms", "p99"), t["delay_p99_ms"])
            and s200.get("delivered_pct") == 100.0
            if s200
            else None,
        ),
        (
            "500 streams: nothing accepted is lost; refusals are 503 SERVICE_UNAVAILABLE",
            f"{_fmt(s500.get('tokens_delivered'))} / {_fmt(s500.get('tokens_expected'))} tokens, "
            f"{_fmt(s500.get('duplicates'))} duplicates, {len(refused) and s500.get('errors')} "
            "refused",
            "",
            (loss_500 and clean_refusals) if s500 else None,
        ),
        (
            f"platform-added p50 ≤ {t['platform_p50_ms']:.0f} ms, p99 ≤ "
            f"{t['platform_p99_ms']:.0f} ms (one stream)",
            f"{_fmt(_g(unloaded, 'platform_added_client_ms', 'p50'))} / "
            f"{_fmt(_g(unloaded, 'platform_added_client_ms', 'p99'))} ms",
            f"{_fmt(_g(ttft, 'unloaded', 'floor', 'streams', 'platform_added_client_ms', 'p50'))} ms",
            meets(_g(unloaded, "platform_added_client_ms", "p50"), t["platform_p50_ms"])
            and meets(_g(unloaded, "platform_added_client_ms", "p99"), t["platform_p99_ms"]),
        ),
        (
            f"platform-added p50 ≤ {t['platform_loaded_p50_ms']:.0f} ms (200 streams in 2 s)",
            f"{_fmt(_g(loaded, 'platform_added_client_ms', 'p50'))} ms",
            f"{_fmt(_g(ttft, 'loaded', 'floor', 'streams', 'platform_added_client_ms', 'p50'))} ms",
            meets(_g(loaded, "platform_added_client_ms", "p50"), t["platform_loaded_p50_ms"]),
        ),
        (
            f"relay-added first token p50 ≤ {t['ttft_p50_ms']:.0f} ms, p99 ≤ "
            f"{t['ttft_p99_ms']:.0f} ms (200 streams)",
            f"{_fmt(_g(loaded, 'ttft_added_ms', 'p50'))} / "
            f"{_fmt(_g(loaded, 'ttft_added_ms', 'p99'))} ms",
            f"{_fmt(_g(ttft, 'loaded', 'floor', 'streams', 'ttft_added_ms', 'p50'))} ms",
            meets(_g(loaded, "ttft_added_ms", "p50"), t["ttft_p50_ms"])
            and meets(_g(loaded, "ttft_added_ms", "p99"), t["ttft_p99_ms"]),
        ),
        (
            f"polling at 200/s during 100 streams: p99 ≤ {t['polling_p99_ms']:.0f} ms",
            f"{_fmt(_g(poll, 'p99'))} ms (p50 {_fmt(_g(poll, 'p50'))}; answered "
            f"{_fmt(_g(polling, 'run', 'relay', 'polling', 'achieved_rate'))}/s)",
            "",
            meets(_g(poll, "p99"), t["polling_p99_ms"]),
        ),
        (
            f"conversation index: every list and search p95 ≤ {t['index_p95_ms']:.0f} ms "
            "(selector, 1M calls)",
            f"worst {_fmt(worst_index)} ms",
            "",
            meets(worst_index, t["index_p95_ms"]),
        ),
        (
            f"one stream ≥ {t['flat_tokens_per_s']:,} tokens/s",
            f"{_fmt(flat_tp.get('tokens_per_s'))} tokens/s",
            f"{_fmt(_g(flat, 'run', 'floor', 'throughput', 'tokens_per_s'))} tokens/s",
            meets(flat_tp.get("tokens_per_s"), t["flat_tokens_per_s"], above=True),
        ),
    ]
    out = [
        "## Against the targets",
        "",
        "Issue #23's targets: same scenarios, same 2-core machine, the load client beside the",
        "stack, the floor in the same run.",
        "",
        "| target | measured | floor | |",
        "|---|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c} | {_ok(d)} |" for a, b, c, d in rows]
    return [*out, ""]


def build_report() -> str:
    ttft, streams, flat = _load("ttft"), _load("streams"), _load("flat")
    polling, index, servers = _load("polling"), _load("index"), _load("servers")
    docs = [d for d in (ttft, streams, flat, polling, index, servers) if d]
    if not docs:
        return "bench: no results to report (run python -m bench first)"
    plots = _plots(streams, servers, ttft)
    meta = max(docs, key=lambda d: d.get("generated_at", ""))
    machine = meta.get("machine", {})
    stack = meta.get("stack", {})
    levels = _g(streams, "levels") or _g(servers, "daphne") or {}
    out: list[str] = [
        "# Benchmarks",
        "",
        "What the relay costs, measured on the 2-core machine every developer and CI has, each",
        "figure beside its *floor*: the same client reading the same fake upstream directly, in the",
        "same run. Generated by `python -m bench` from `bench/results/*.json`; the narrative",
        "sections come from `bench/findings.md`.",
        "",
    ]
    out += _targets_table(ttft, levels, flat, polling, index)
    if FINDINGS.exists():
        out += [FINDINGS.read_text().strip(), ""]
    out += [
        "## The machine and the stack",
        "",
        f"- Machine: {machine.get('nproc')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, Linux {machine.get('kernel')}, "
        f"Python {machine.get('python')}. Results generated {meta.get('generated_at')}.",
        "- Versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted((machine.get("versions") or {}).items())),
        f"- Stack: {stack.get('asgi_processes', 1)} ASGI server process(es) on one port "
        "(Daphne: one SO_REUSEPORT socket each, as `./run` starts them; uvicorn: `--workers`), "
        f"{stack.get('turn_worker_processes')} turn worker process(es) (Celery, threads "
        f"pool, queue `turns`) × `TURN_WORKER_CONCURRENCY`={stack.get('TURN_WORKER_CONCURRENCY')}, "
        f"AI endpoint `pool_size`={stack.get('ai_endpoint_pool_size')}, "
        f"`SESSION_CREATE_RATE_LIMIT`={stack.get('SESSION_CREATE_RATE_LIMIT')} (every simulated "
        "visitor comes from 127.0.0.1), `UPSTREAM_TRUST_ENV`=false, `ANSWER_MAX_CHARS`=10000000 "
        "(scenario 3's answer is longer than the default cap); everything else at its "
        "default (`STREAM_FRAME_INTERVAL_MS`=50, `STREAM_DB_FLUSH_SECONDS`=0.5, rate limits on, "
        "INFO logging, a psycopg connection pool of up to 20 per process). "
        "PostgreSQL is an embedded server of the benchmark's own (devstack's code and settings: "
        "max_connections 400, shared_buffers 256 MB; data in `.data/bench/`), so a connection "
        "storm cannot take connections from other work on the machine; Redis is a private "
        "embedded server; the fake Flowise (`tests/fakes/flowise.py`) runs as its own process.",
        f"- The fake waits {meta.get('think_s')} s before its first token (a model's think time) "
        "so the client has asked to follow the turn before the first token exists; no measured "
        "interval includes that wait.",
        "- Other engineers run test suites on this machine. Each run first waits (up to "
        "`--quiet-timeout`, default 10 minutes) until processes outside the stack use fewer "
        "than `--quiet-cores` (default 0.3) cores; the load average before each run and the "
        "cores the rest of the machine used during it are in the tables and the JSON.",
        "",
        "## How it is measured",
        "",
        "- `python -m bench` (or `./run bench`) starts PostgreSQL and a private Redis "
        "(`devstack.services.ensure_services`), migrates `chatbot_bench`, seeds a chatbot whose "
        "main flow is a Flowise endpoint at the fake, and starts the fake Flowise, the turn "
        "worker(s) and Daphne (later uvicorn) as separate processes with the command lines "
        "`./run` uses.",
        "- The load client is one asyncio process (uvloop, `websockets`, and httpx over the "
        "worker's own HTTP transport). For each stream it creates a conversation "
        "(`POST /api/sessions`) and opens its WebSocket before the clock starts; then, at a "
        "scheduled time (the streams' starts spread evenly over the ramp: 2 s), it sends "
        "`POST /api/process-message` and, with the answer, `resume` from event 0 on the socket. "
        "Open loop: nothing waits for an earlier stream.",
        "- The fake answers every stream with tokens ` t0`, ` t1`, … so the client knows each "
        "token's index: it counts every frame per connection and checks that the token indices "
        "are exactly 0…n-1 in order (delivered, duplicates, order) and the event ids have no gaps.",
        "- The fake records each token's CLOCK_MONOTONIC emission time "
        "(`GET /__fake__/emissions`), shared by every process on the host, so "
        "**emission → receipt** = client receipt − emission, per token. Tokens are coalesced into "
        "frames every `STREAM_FRAME_INTERVAL_MS` (50 ms) after the first, so up to 50 ms of this "
        "delay is by design. **Relay-added TTFT** is the same for token 0 (sent at once, never "
        "coalesced). **Platform-added** is from the client sending the POST (its wall clock) to "
        "the fake receiving the upstream request (the fake's wall clock, same host); the "
        "*server-side* variant starts at `Turn.created_at` instead (the moment the view stored "
        "the message, after parsing, auth and rate limits).",
        "- **Floor**: the same client reads the same number of streams straight from the fake "
        "with the same HTTP transport the worker uses, on the same schedule; floor for "
        "platform-added is its POST reaching the fake.",
        "- CPU (% of one core) and memory (PSS, so PostgreSQL's shared buffers are not counted "
        "once per backend) of every process are sampled each second with psutil; CPU counts "
        "reaped children, so `postgres` (the whole private server) includes backends that "
        "lived for one request.",
        "",
        "Reproduce: `.venv/bin/python -m bench` (everything: ~25 minutes on a quiet machine, "
        "plus the waits for quiet), "
        "`.venv/bin/python -m bench streams --levels 500` (one scenario), "
        "`.venv/bin/python -m bench --quick` (smoke run, under a minute, results in "
        "`bench/results/quick/`), `--dry-run` (print the plan), `--profile` (py-spy on Daphne and "
        "the first worker during the biggest run), `--workers N --worker-threads N`, "
        "`--report` (rebuild this page from the JSON).",
        "",
    ]
    if ttft:
        out += ["## 1. Time to first token added by us", ""]
        for part, title in (
            ("unloaded", "one stream at a time"),
            ("loaded", "200 concurrent streams"),
        ):
            s = _g(ttft, part, "relay", "streams")
            f = _g(ttft, part, "floor", "streams")
            if not s:
                continue
            out += [
                f"**{title.capitalize()}** (ms):",
                "",
                PCT_HEAD,
                _pct_row(
                    "relay-added TTFT (first token emitted → on the socket)",
                    s.get("ttft_added_ms"),
                    _g(f, "ttft_added_ms"),
                ),
                _pct_row(
                    "platform-added (POST sent → upstream request received)",
                    s.get("platform_added_client_ms"),
                    _g(f, "platform_added_client_ms"),
                ),
                _pct_row(
                    "platform-added, server side (turn stored → upstream request)",
                    s.get("platform_added_server_ms"),
                    {},
                ),
                _pct_row("POST /api/process-message response time", s.get("post_latency_ms"), {}),
                "",
            ]
            if s.get("ttft_late_subscribe"):
                out += [
                    f"{s['ttft_late_subscribe']} stream(s) asked to follow their turn only after "
                    "its first token existed and are left out of the relay-added TTFT.",
                    "",
                ]
        if "ttft.png" in plots:
            out += ["![time to first token](../bench/results/ttft.png)", ""]
    if streams:
        lv = streams.get("levels") or {}
        out += [
            "## 2. Concurrent streams (Daphne)",
            "",
            "Each stream: the upstream emits 50 tokens/s for 10 s (500 tokens). Delay = upstream "
            "emission → client receipt, per token.",
            "",
            *_streams_table(lv, "Daphne"),
            "",
            "CPU (% of one core) and memory per process:",
            "",
            *_resources_table(lv),
            "",
            "CPU per token delivered, each run extrapolated to 500 streams × 50 tokens/s "
            "(25,000 tokens/s) for the processes of the stack (not the fake, not the client). "
            "It includes each turn's start and finish, spread over its 500 tokens, and it falls "
            "when the relay falls behind (more tokens share a frame), so read it as a rough "
            "size, not a law.",
            "",
            *_cpu_per_token_table(lv),
            "",
        ]
        for n in sorted(int(k) for k in lv if lv[k]):
            ex = _g(lv, str(n), "relay", "streams", "error_examples")
            if ex:
                out += [f"Errors at {n} streams (examples): " + "; ".join(f"`{e}`" for e in ex), ""]
        for name in ("streams_delay.png", "streams_cpu.png"):
            if name in plots:
                out += [f"![{name[:-4]}](../bench/results/{name})", ""]
    if flat:
        relay_tp = _g(flat, "run", "relay", "throughput") or {}
        floor_tp = _g(flat, "run", "floor", "throughput") or {}
        rs = _g(flat, "run", "relay", "streams") or {}
        out += [
            "## 3. One stream flat out",
            "",
            f"The fake writes {_fmt(_g(flat, 'run', 'relay', 'run', 'tokens'))} tokens as fast as "
            "it can.",
            "",
            "| | tokens/s at the client | upstream tokens/s | frames | last token lag | delivered |",
            "|---|---|---|---|---|---|",
            f"| relay | {_fmt(relay_tp.get('tokens_per_s'))} | "
            f"{_fmt(relay_tp.get('upstream_tokens_per_s'))} | {_fmt(relay_tp.get('frames'))} | "
            f"{_fmt(relay_tp.get('last_token_lag_ms'))} ms | {_fmt(rs.get('delivered_pct'))}% |",
            f"| floor | {_fmt(floor_tp.get('tokens_per_s'))} | "
            f"{_fmt(floor_tp.get('upstream_tokens_per_s'))} | {_fmt(floor_tp.get('frames'))} | "
            f"{_fmt(floor_tp.get('last_token_lag_ms'))} ms | "
            f"{_fmt(_g(flat, 'run', 'floor', 'streams', 'delivered_pct'))}% |",
            "",
        ]
    if polling:
        rp = _g(polling, "run", "relay", "polling") or {}
        fp = _g(polling, "run", "floor", "polling") or {}
        rr = _g(polling, "run", "relay") or {}
        out += [
            "## 4. Polling during streaming",
            "",
            f"`GET /api/stream-events/<turn>?after=<last>` at {_fmt(rp.get('target_rate'))} "
            f"requests/s for {_fmt(_g(rr, 'run', 'poll_s'))} s, open loop (requests are "
            "scheduled at fixed times; latency runs from the scheduled time to the response, so "
            f"a stall is charged to every request it delayed), while "
            f"{_fmt(_g(rr, 'run', 'streams'))} streams run. Floor: the same poller against the "
            "fake's `GET /api/v1/ping` while the same number of streams read it directly.",
            "",
            PCT_HEAD_NOFLOOR,
            _pct_row("stream-events (ms)", rp.get("latency_ms")),
            _pct_row("floor: fake ping (ms)", fp.get("latency_ms")),
            "",
            f"Statuses: {rp.get('statuses')}; answered {_fmt(rp.get('achieved_rate'))} requests/s "
            "on average (scheduled: 200/s). "
            f"The streams meanwhile: delay p99 "
            f"{_fmt(_g(rr, 'streams', 'emission_to_receipt_ms', 'p99'))} ms, "
            f"{_fmt(_g(rr, 'streams', 'delivered_pct'))}% delivered.",
            "",
        ]
    if index:
        figs = _g(index, "index", "figures")
        out += ["## 5. Conversation index at scale", ""]
        if not figs:
            out += [
                f"Not measured: {_g(index, 'index', 'skipped') or 'the run failed'} "
                f"(exit code {_g(index, 'index', 'exit_code')}).",
                "",
            ]
        else:
            out += [
                "From `bench/conversation_index.py` (the analytics benchmark, run as it is): "
                f"dataset {figs.get('dataset')}.",
                "",
                "| sync | calls | seconds | calls/s |",
                "|---|---|---|---|",
                f"| full | {_fmt(_g(figs, 'full_sync', 'calls'))} | "
                f"{_fmt(_g(figs, 'full_sync', 'seconds'))} | "
                f"{_fmt(_g(figs, 'full_sync', 'calls_per_second'))} |",
                f"| incremental (median of rounds) | | | "
                f"{_fmt(_g(figs, 'incremental_sync', 'median_calls_per_second'))} |",
                "",
                "| query | via | n | p50 ms | p95 ms | p99 ms |",
                "|---|---|---|---|---|---|",
            ]
            for via, queries in (figs.get("queries_ms") or {}).items():
                if not isinstance(queries, dict):
                    continue
                for name, st in queries.items():
                    if isinstance(st, dict):
                        out.append(
                            f"| {name} | {via} | {_fmt(st.get('n'))} | {_fmt(st.get('p50'))} "
                            f"| {_fmt(st.get('p95'))} | {_fmt(st.get('p99'))} |"
                        )
            targets = figs.get("targets") or {}
            out += [
                "",
                f"Targets: list and search p95 ≤ {targets.get('list_and_search_p95_ms')} ms "
                f"(over target: {targets.get('queries_over_target') or 'none'}); incremental sync "
                f"≥ {_fmt(targets.get('incremental_calls_per_second'))} calls/s "
                f"({_ok(targets.get('incremental_met'))}).",
                "",
            ]
    if servers:
        out += [
            "## 6. Server choice: Daphne and uvicorn",
            "",
            "Scenario 2 again with uvicorn (`uvicorn[standard]`: uvloop, httptools, websockets) in "
            "place of Daphne (the same number of processes, `--workers`); the workers, Redis, "
            "PostgreSQL and the fake are the same processes.",
            "",
            *_streams_table(servers.get("daphne") or {}, "Daphne"),
            "",
            *_streams_table(servers.get("uvicorn") or {}, "uvicorn"),
            "",
        ]
        uv = servers.get("uvicorn") or {}
        xs = sorted(int(n) for n in uv if uv[n])
        if xs:
            out += [
                "| streams | Daphne CPU | uvicorn CPU | Daphne PSS | uvicorn PSS |",
                "|---|---|---|---|---|",
            ]
            for n in xs:
                d = _g(servers, "daphne", str(n), "relay", "resources", "roles", "daphne") or {}
                u = _g(uv, str(n), "relay", "resources", "roles", "uvicorn") or {}
                out.append(
                    f"| {n} | {_fmt(d.get('cpu_mean'))}% | {_fmt(u.get('cpu_mean'))}% "
                    f"| {_fmt(d.get('pss_max_mib'))} MiB | {_fmt(u.get('pss_max_mib'))} MiB |"
                )
            out.append("")
    out += _knowledge_section()
    DOC.write_text("\n".join(out).rstrip() + "\n")
    return f"bench: wrote {DOC.relative_to(ROOT)} and {len(plots)} plot(s)"


def _knowledge_section() -> list[str]:
    """Section 7 from `./run bench knowledge` (bench/knowledge.py; its own database, run on its
    own because it loads 100,000 or more chunks): one line per dataset it left results for."""
    rows = []
    for name in ("knowledge", "knowledge-1m"):
        doc = _load(name)
        if not doc:
            continue
        data, queries = doc.get("dataset") or {}, doc.get("queries_ms") or {}
        rows.append(
            f"| {_fmt(data.get('chunks'))} chunks, {data.get('shops', 1)} shop(s), "
            f"{data.get('dims')} dims | "
            + " | ".join(
                f"{_fmt(_g(queries, m, 'p50'))} / {_fmt(_g(queries, m, 'p95'))}"
                for m in ("fulltext", "vector", "hybrid")
            )
            + f" | {_fmt(_g(doc, 'ingestion', 'chunks_per_second'))} | "
            f"{(doc.get('generated_at') or '')[:10]} |"
        )
    if not rows:
        return []
    return [
        "## 7. Knowledge retrieval",
        "",
        "From `./run bench knowledge` (`bench/knowledge.py`; target: hybrid p95 ≤ 30 ms at",
        "100,000 chunks). Milliseconds, p50 / p95; conditions and caveats in",
        "[knowledge.md](knowledge.md#benchmark-benchknowledgepy).",
        "",
        "| dataset | full-text | vector | hybrid | ingestion chunks/s | measured |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]

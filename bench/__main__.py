"""`python -m bench [scenario …]`: start the real stack, measure, write bench/results/*.json,
the plots and docs/benchmarks.md. Scenarios: ttft streams flat polling index servers (all by
default); `knowledge [--chunks N …]` runs bench/knowledge.py on its own. `--quick` is a smoke run (under a minute); `--dry-run` only prints the plan."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bench.runner import SCENARIOS, Executor, make_plan, write_results
from bench.stack import StackConfig


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"any of: {' '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; start nothing")
    parser.add_argument("--levels", default="", help="stream counts, e.g. 50,100,200,500")
    parser.add_argument("--workers", type=int, default=None, help="turn worker processes")
    parser.add_argument(
        "--asgi-processes", type=int, default=None, help="ASGI server processes (ASGI_PROCESSES)"
    )
    parser.add_argument(
        "--worker-threads", type=int, default=None, help="TURN_WORKER_CONCURRENCY per worker"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the stack's processes (recorded in the results), e.g. "
        "--env STREAM_FRAME_INTERVAL_MS=25",
    )
    parser.add_argument(
        "--redis-servers",
        type=int,
        default=1,
        help="Redis servers for the channel layer and event logs (EVENT_REDIS_URLS)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the biggest relay run")
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="wait before each run until other processes use fewer cores than this",
    )
    parser.add_argument("--quiet-timeout", type=float, default=600, help="longest wait (s)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the docs/plots")
    parser.add_argument(
        "--report", action="store_true", help="only rebuild plots and docs from existing JSON"
    )
    return parser.parse_args(argv)


def _knowledge(argv: list[str]) -> int:
    """`./run bench knowledge [--chunks N --shops N --dims N …]`: retrieval over N chunks in its own
    database on the embedded PostgreSQL (pgvector), then section 7 of docs/benchmarks.md."""
    import os

    from devstack.services import ensure_services

    root = Path(__file__).resolve().parents[1]
    if not os.environ.get("DATABASE_URL"):
        ensure_services(root / ".data")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from bench.knowledge import main as knowledge_main

    knowledge_main(argv)
    from bench.report import build_report

    print(build_report())
    return 0


def _exit_on_sigterm(signum, frame):
    # Leave through the `finally` blocks, which stop every process the benchmark started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["knowledge"]:
        return _knowledge(argv[1:])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.report:
        from bench.report import build_report

        print(build_report())
        return 0
    levels = [int(x) for x in args.levels.split(",") if x.strip()] or None
    try:
        plan = make_plan(args.scenarios, quick=args.quick, levels=levels)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    config = StackConfig()
    if args.quick:
        config.workers, config.worker_threads = 1, 100
    if args.workers is not None:
        config.workers = args.workers
    if args.asgi_processes is not None:
        config.asgi_processes = args.asgi_processes
    if args.worker_threads is not None:
        config.worker_threads = args.worker_threads
    if args.redis_servers > 1:
        # A variant of the stack: its results go beside the main ones, not over them.
        config.redis_servers = args.redis_servers
        plan.results_dir = str(Path(plan.results_dir) / f"redis-servers-{args.redis_servers}")
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"bench: --env wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        config.env[name] = value
        config.asgi_env.pop(name, None)  # asked for explicitly: every process gets it
    if args.dry_run:
        print(json.dumps({"plan": plan.as_dict(), "stack": config.as_dict()}, indent=2))
        return 0
    executor = Executor(
        plan,
        config,
        quiet_cores=args.quiet_cores,
        quiet_timeout=0 if args.quick else args.quiet_timeout,
        profile=args.profile,
    )
    results = executor.execute()
    for path in write_results(plan, results, config):
        print(
            f"bench: wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
        )
    if not args.quick and not args.no_docs:
        from bench.report import build_report

        print(build_report())
    return 0


if __name__ == "__main__":
    sys.exit(main())

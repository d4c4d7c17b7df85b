"""The Celery worker command line, spelled once: `./run` starts its workers with it, and so do
the e2e and reliability tests and the benchmarks, so a flag changed here (a pool, mingle and
gossip off) reaches every stack that is started from a checkout (#16 item 6).

The container's entry point (deploy/entrypoint.py) keeps its own copy: it runs as a script in
the image, before anything puts the checkout on the import path.
"""

from __future__ import annotations

import sys


def celery_worker_cmd(
    name: str, queues: str, pool: str = "threads", concurrency: int = 4, *, loglevel: str = "INFO"
) -> list[str]:
    """`celery worker` as node `name@%h` on `queues`, mingle and gossip off (as in the
    containers): a worker needs nothing from the others at start or while it runs."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-n",
        f"{name}@%h",
        "-Q",
        queues,
        "-P",
        pool,
        "-c",
        str(concurrency),
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
    ]

"""`manage.py check --deploy` in a subprocess with a given environment: settings are read once
per process, so each environment needs its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def deploy_check(
    values: dict[str, str], *, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """The check at WARNING level with `values` over this process's environment, without the
    names in `drop` and without the private-network switch ./run test sets (production does not)."""
    env = {**os.environ, **values}
    for name in (*drop, "ALLOW_PRIVATE_NETWORK_URLS"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

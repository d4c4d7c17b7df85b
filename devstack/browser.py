"""Chromium for the browser tests: find it, or install Debian's `chromium` package when we can.

Playwright's own `playwright install` downloads browser builds from a CDN, which this project
never relies on; the tests drive the distribution's Chromium through `executable_path` instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("chromium", "chromium-browser")
APT_PACKAGE = "chromium"
INSTALL_TIMEOUT_SECONDS = 900

# Why the last ensure_chromium() returned None (for the tests' skip reason).
last_problem = ""


def _say(message: str) -> None:
    print(f"browser: {message}", file=sys.stderr, flush=True)


def _give_up(message: str) -> None:
    global last_problem
    last_problem = message
    _say(message)


def chromium_path() -> str | None:
    """The Chromium binary: $CHROMIUM_PATH if set, else the first one on PATH."""
    configured = os.environ.get("CHROMIUM_PATH", "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _apt(args: list[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            ["apt-get", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"apt-get {' '.join(args)} failed: {exc}")
        return False
    if result.returncode != 0:
        tail = result.stdout.decode(errors="replace").strip().splitlines()[-5:]
        _say(f"apt-get {' '.join(args)} exited with {result.returncode}: " + " | ".join(tail))
        return False
    return True


def ensure_chromium() -> str | None:
    """The path of a Chromium binary, installing Debian's package if needed and possible.

    Returns None (after printing why) when Chromium is missing and cannot be installed here:
    not root, no apt-get, CHROMIUM_AUTO_INSTALL=false, or the install failed.
    """
    found = chromium_path()
    if found:
        return found
    if os.environ.get("CHROMIUM_PATH", "").strip():
        _give_up(f"CHROMIUM_PATH={os.environ['CHROMIUM_PATH']} is not an executable file.")
        return None
    if os.environ.get("CHROMIUM_AUTO_INSTALL", "true").lower() in ("0", "false", "no"):
        _give_up(
            "Chromium is not installed and CHROMIUM_AUTO_INSTALL is off; install it with "
            "`apt-get install chromium` (or set CHROMIUM_PATH)."
        )
        return None
    if not shutil.which("apt-get"):
        _give_up(
            "Chromium is not installed and this machine has no apt-get; install Chromium and "
            "put it on PATH (or set CHROMIUM_PATH)."
        )
        return None
    if os.geteuid() != 0:
        _give_up(
            "Chromium is not installed and installing it needs root; run "
            "`sudo apt-get install chromium` (or set CHROMIUM_PATH)."
        )
        return None
    _say(
        "Chromium is not installed; the browser tests need it, installing Debian's "
        f"`{APT_PACKAGE}` package with apt-get (this takes a minute, once per machine)."
    )
    installed = _apt(["install", "-y", "--no-install-recommends", APT_PACKAGE])
    if not installed:
        # A fresh machine has no package lists yet: fetch them once and try again.
        _say("refreshing the package lists (apt-get update) and trying again.")
        installed = _apt(["update"]) and _apt(
            ["install", "-y", "--no-install-recommends", APT_PACKAGE]
        )
    found = chromium_path()
    if not installed or not found:
        _give_up("could not install Chromium with apt-get (see the output above).")
        return None
    _say(f"Chromium installed at {found}.")
    return found


if __name__ == "__main__":
    path = ensure_chromium()
    print(path or "")
    sys.exit(0 if path else 1)

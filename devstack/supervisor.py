"""The processes `./run` starts, and how it watches them.

Essential parts (Daphne, the workers, beat) are the product: when one exits, everything stops.
Optional parts (Flower, the fake Flowise) are helpers: one that cannot start (its port is taken,
it exits, it never answers) is reported in one line and skipped. Ports are checked before
anything starts, so a busy one is a sentence naming the variable to change, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_SECONDS = 120


class StartProblem(Exception):
    """Something the person running `./run` can fix; the message says how, in one line."""


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        port = int(raw)
    except ValueError:
        raise StartProblem(f"{name}={raw} is not a port number; set {name}={default}") from None
    if not 1 <= port <= 65535:
        raise StartProblem(f"{name}={raw} is not a port number; set {name}={default}")
    return port


def _bind_error(host: str, port: int) -> OSError | None:
    """Why (host, port) cannot be listened on now, or None.

    A plain bind, without SO_REUSEPORT: Daphne's sockets set it, and a second `./run` that set it
    too would silently share the first one's port instead of being told it is taken.
    """
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, str(exc))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            sock.bind(infos[0][4])
        except OSError as exc:
            return exc
    return None


def free_port_near(host: str, port: int, *, avoid: tuple[int, ...] = ()) -> int | None:
    """The first port after `port` that can be listened on (a suggestion, not a reservation)."""
    for candidate in range(port + 1, min(port + 100, 65536)):
        if candidate not in avoid and _bind_error(host, candidate) is None:
            return candidate
    return None


def port_problem(host: str, port: int, variable: str, *, avoid: tuple[int, ...] = ()) -> str | None:
    """One line saying why `./run` cannot listen on host:port and what to set, or None."""
    if ":" in host:
        # Twisted's `fd:` endpoint adopts IPv4 sockets only (devstack/asgi.py).
        return f"HOST={host} is an IPv6 address; set HOST=127.0.0.1 (or another IPv4 address)"
    if port in avoid:
        error: OSError | None = OSError(errno.EADDRINUSE, "used by another part of ./run")
    else:
        error = _bind_error(host, port)
    if error is None:
        return None
    if error.errno == errno.EADDRNOTAVAIL:
        return f"HOST={host} is not an address of this machine; set HOST=127.0.0.1"
    suggestion = free_port_near(host, port, avoid=avoid)
    fix = f"set {variable}={suggestion}" if suggestion else f"set {variable} to a free port"
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is taken; {fix} (or stop what uses it)"
    if error.errno == errno.EACCES:
        return f"port {port} on {host} needs more privileges than this user has; {fix}"
    return f"cannot listen on {host}:{port} ({error.strerror or error}); {fix}"


# --- answering -----------------------------------------------------------------------------------


def http_answers(url: str, timeout: float = 2.0) -> str | None:
    """None when `url` answers HTTP at all (any status), else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer at {url} ({reason})"


def health_problem(url: str, timeout: float = 5.0) -> str | None:
    """None when GET /health says healthy (200), else what it reports."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        down = [
            f"{name}: {(state or {}).get('status')}"
            for name, state in (body.get("dependencies") or {}).items()
            if (state or {}).get("status") not in ("up", "connected")
        ]
        if down:
            return f"{url} answers {exc.code}: " + ", ".join(down)
        if exc.code == 400:
            return f"{url} answers 400 (is HOST in ALLOWED_HOSTS?)"
        return f"{url} answers {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer at {url} ({getattr(exc, 'reason', exc)})"


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    command: list[str]
    essential: bool = True
    label: str = ""  # how the person reads it: "Flower", "the fake Flowise"
    pass_fds: tuple[int, ...] = ()
    log: Path | None = None  # optional parts write here instead of the terminal
    ready: Callable[[], str | None] | None = None  # None = answers; else why not yet
    env: dict[str, str] | None = None  # added to the environment (secrets stay out of argv)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    skipped: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name

    def start(self, cwd: Path) -> None:
        out = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.command,
                cwd=cwd,
                start_new_session=True,
                pass_fds=self.pass_fds,
                env={**os.environ, **self.env} if self.env else None,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
            )
        finally:
            if out is not None:
                out.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def last_log_line(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1][:200] if lines else ""

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):  # it may have exited just now
                os.killpg(self.proc.pid, signal.SIGTERM)


def say(message: str) -> None:
    print(f"run: {message}", flush=True)


def skip(part: Part, why: str) -> None:
    part.skipped = why
    part.stop()
    where = f"; see {part.log}" if part.log else ""
    say(f"{part.title} skipped: {why}{where}. The product runs on without it.")


def exit_reason(part: Part) -> str:
    assert part.proc is not None
    last = part.last_log_line()
    return f"exited with {part.proc.returncode}" + (f" ({last})" if last else "")


class Supervisor:
    """Starts parts, waits until they answer, watches them until Ctrl-C or an essential exit."""

    def __init__(self, parts: list[Part], cwd: Path) -> None:
        self.parts = parts
        self.cwd = cwd
        self.stop_signal: int | str | None = None

    def on_signal(self, signum, _frame) -> None:
        self.stop_signal = signum

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)

    def start(self) -> None:
        for part in self.parts:
            part.start(self.cwd)

    def check_exits(self) -> Part | None:
        """An essential part that exited (the product is down), after skipping optional ones."""
        for part in self.parts:
            if part.skipped or part.proc is None or part.running:
                continue
            if part.essential:
                return part
            skip(part, f"it {exit_reason(part)}")
        return None

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS, interval: float = 0.5) -> bool:
        """True once every part still running answers; False if stopped or an essential exited.

        Past `timeout`, optional parts that do not answer are skipped, and an essential one that
        does not is named; the wait for it goes on (until it answers, exits, or Ctrl-C).
        """
        deadline = time.monotonic() + timeout
        pending = [p for p in self.parts if p.ready is not None]
        told: set[str] = set()
        while self.stop_signal is None:
            dead = self.check_exits()
            if dead is not None:
                say(f"{dead.title} {exit_reason(dead)}; stopping everything")
                self.stop_signal = "child"
                return False
            still = []
            for part in pending:
                if part.skipped:
                    continue
                problem = part.ready() if part.ready else None
                if problem is None:
                    continue
                if time.monotonic() > deadline:
                    if not part.essential:
                        skip(part, f"it did not answer in {timeout:.0f} s: {problem}")
                        continue
                    if part.name not in told:
                        told.add(part.name)
                        say(
                            f"still waiting for {part.title} after {timeout:.0f} s: {problem} "
                            "(Ctrl-C stops)"
                        )
                still.append(part)
            pending = still
            if not pending:
                return True
            time.sleep(interval)
        return False

    def watch(self, interval: float = 0.3) -> int:
        """Until Ctrl-C/SIGTERM (0) or an essential part's exit (1); then stop everything."""
        code = 0
        while self.stop_signal is None:
            dead = self.check_exits()
            if dead is not None:
                say(f"{dead.title} {exit_reason(dead)}; stopping everything")
                self.stop_signal = "child"
                code = 1
                break
            time.sleep(interval)
        if self.stop_signal == "child":
            code = 1
        self.stop_all()
        return code

    def stop_all(self, grace: float = 30) -> None:
        for part in self.parts:
            part.stop()
        deadline = time.monotonic() + grace
        for part in self.parts:
            if part.proc is None:
                continue
            try:
                part.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{part.title} did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(part.proc.pid, signal.SIGKILL)
                part.proc.wait()
        say("stopped")

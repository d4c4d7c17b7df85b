"""How `./run` and the benchmark start the ASGI server: one or more Daphne processes, one port.

One Daphne process runs Django's request handling on one core (the GIL), and a burst of new
conversations is what fills it first (bench/findings.md, item 3). Several processes share the
port through SO_REUSEPORT: each gets a listening socket of its own, bound to the same address,
and the kernel spreads new connections over them. The sockets are made here and handed to each
process as an inherited file descriptor (Twisted's `fd:` endpoint), so the backlog is ours too.
Everything a process shares with the others goes through Redis and PostgreSQL already (channel
layer, rate limits, caches, event logs), so nothing else changes.
"""

from __future__ import annotations

import os
import socket
import sys

BACKLOG = 2048  # Daphne's default (50) resets connections under a burst


def asgi_processes() -> int:
    """ASGI_PROCESSES, default: one per core up to two."""
    raw = os.environ.get("ASGI_PROCESSES", "").strip()
    if raw:
        return max(1, int(raw))
    return max(1, min(2, os.cpu_count() or 1))


def listen_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    if ":" in host:
        # Twisted's `fd:` endpoint adopts IPv4 sockets only (its domain argument is not parsed).
        raise ValueError(f"HOST must be an IPv4 address or name, not {host!r}")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def daphne_command(sock: socket.socket, application: str = "config.asgi:application") -> list[str]:
    return [sys.executable, "-m", "config.daphne", "-e", f"fd:fileno={sock.fileno()}", application]

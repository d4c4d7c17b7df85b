"""`./run`'s web tier: several Daphne processes serving one port (devstack/asgi.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx
import psutil
import pytest

from devstack.asgi import daphne_command, listen_sockets
from devstack.services import free_port
from tests.e2e.conftest import ARTIFACTS, ROOT

pytestmark = pytest.mark.e2e


def _established(pid: int, port: int) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )


def test_two_daphne_processes_share_one_port_and_both_take_connections():
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    procs = []
    try:
        for n, sock in enumerate(listen_sockets("127.0.0.1", port, 2)):
            log = (ARTIFACTS / f"asgi-processes-{n}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    daphne_command(sock),
                    cwd=ROOT,
                    env=os.environ.copy(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=[sock.fileno()],
                )
            )
            sock.close()
        # Both serve HTTP through their inherited sockets once Django is loaded.
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "Daphne did not answer on the shared port"
                time.sleep(0.2)
        # The kernel spreads new connections over both listening sockets.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        try:
            deadline = time.monotonic() + 20
            while sum(_established(p.pid, port) for p in procs) < len(clients):
                assert time.monotonic() < deadline, "the connections were not all accepted"
                time.sleep(0.1)
            shares = [_established(p.pid, port) for p in procs]
        finally:
            for client in clients:
                client.close()
        assert all(share > 0 for share in shares), shares
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)

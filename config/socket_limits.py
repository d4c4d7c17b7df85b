"""Per-address caps on open WebSockets, counted in the ASGI process (issue #18 item 4).

Each WebSocket holds a file descriptor, a consumer task and its buffers in one server process
for as long as it stays open, so one client address may hold at most
WS_MAX_SOCKETS_PER_ADDRESS open sockets, and at most WS_MAX_UNAUTHENTICATED_PER_ADDRESS that have
not yet shown a conversation token, in each process. Past a cap the handshake is refused (the
client sees 403; Daphne logs WSREJECT) before any consumer runs. Sockets that stay
unauthenticated are closed by the consumer after WS_AUTH_TIMEOUT_SECONDS.

Counted per process, not in Redis: what a socket costs is that process's memory and
descriptors, an in-process count is exact and needs no round trip per handshake, and it cannot
leak — a Redis count left behind by a killed process would lock an address out until it
expired. The cost: with N server processes an address may hold up to N times a cap (`./run`
starts one per core). The address is the client's by config.client_address: behind a proxy
listed in TRUSTED_PROXIES, the visitor's, not the proxy's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.conf import settings

from config.client_address import client_address_of_scope

logger = logging.getLogger(__name__)

SCOPE_KEY = "socket_slot"

# Told of the end of every WebSocket the middleware saw, with path=, outcome= ("accepted",
# "rejected" by the application, "refused" over a cap) and seconds= it lived: monitoring's runtime
# metrics register here when the app is ready (config sits below every app and cannot call them).
SocketObserver = Callable[..., None]
_socket_observers: dict[str, SocketObserver] = {}


def register_socket_observer(name: str, observer: SocketObserver) -> None:
    _socket_observers[name] = observer


def _sockets_observed(*, path: str, outcome: str, seconds: float) -> None:
    for observer in list(_socket_observers.values()):
        observer(path=path, outcome=outcome, seconds=seconds)


class AddressSockets:
    """Open and not-yet-authenticated WebSockets per client address, in this process."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()
        self.unauthenticated: Counter[str] = Counter()

    def refusal(self, address: str) -> str | None:
        """Why a new socket from this address is refused, or None to let it in."""
        if settings.WS_MAX_SOCKETS_PER_ADDRESS and (
            self.open[address] >= settings.WS_MAX_SOCKETS_PER_ADDRESS
        ):
            return f"{self.open[address]} sockets open (WS_MAX_SOCKETS_PER_ADDRESS)"
        if settings.WS_MAX_UNAUTHENTICATED_PER_ADDRESS and (
            self.unauthenticated[address] >= settings.WS_MAX_UNAUTHENTICATED_PER_ADDRESS
        ):
            return (
                f"{self.unauthenticated[address]} sockets not yet authenticated"
                " (WS_MAX_UNAUTHENTICATED_PER_ADDRESS)"
            )
        return None

    def _drop(self, counter: Counter[str], address: str) -> None:
        counter[address] -= 1
        if counter[address] <= 0:
            del counter[address]  # keep the counters as small as the set of live addresses


class SocketSlot:
    """One socket's place in the counts; the consumer calls `authenticated()` once it is."""

    def __init__(self, sockets: AddressSockets, address: str) -> None:
        self.sockets = sockets
        self.address = address
        self.is_authenticated = False
        sockets.open[address] += 1
        sockets.unauthenticated[address] += 1

    def authenticated(self) -> None:
        if not self.is_authenticated:
            self.is_authenticated = True
            self.sockets._drop(self.sockets.unauthenticated, self.address)

    def release(self) -> None:
        self.authenticated()
        self.sockets._drop(self.sockets.open, self.address)


def slot_of(scope: dict) -> SocketSlot | None:
    return scope.get(SCOPE_KEY)


class SocketLimitMiddleware:
    """Wraps the WebSocket application: refuse over the caps, count the rest while they live."""

    def __init__(
        self,
        app: Any,
        sockets: AddressSockets | None = None,
        *,
        authenticated_at_open: Any = None,
    ) -> None:
        self.app = app
        self.sockets = sockets or AddressSockets()
        # A predicate on the scope: sockets it accepts count as authenticated from the start
        # (an Engine.IO upgrade of a session that already authenticated over long-polling).
        self.authenticated_at_open = authenticated_at_open

    async def __call__(self, scope: dict, receive, send) -> None:
        address = client_address_of_scope(scope) or "unknown"
        path = scope.get("path", "")
        started = time.perf_counter()
        reason = self.sockets.refusal(address)
        if reason is not None:
            logger.warning("websocket refused for %s: %s", address, reason)
            _sockets_observed(path=path, outcome="refused", seconds=0.0)
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close"})  # before accept: a 403 at the handshake
            return
        slot = SocketSlot(self.sockets, address)
        if self.authenticated_at_open is not None and self.authenticated_at_open(scope):
            slot.authenticated()
        accepted = False

        async def send_watched(message: dict) -> None:
            nonlocal accepted
            if message.get("type") == "websocket.accept":
                accepted = True
            await send(message)

        try:
            await self.app({**scope, SCOPE_KEY: slot}, receive, send_watched)
        finally:
            slot.release()
            _sockets_observed(
                path=path,
                outcome="accepted" if accepted else "rejected",
                seconds=time.perf_counter() - started,
            )

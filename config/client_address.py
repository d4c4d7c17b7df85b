"""The client address of a request or socket behind trusted proxies (issue #24 item 2).

Behind a TLS proxy every connection comes from the proxy, so rate limits, the login lockout,
the audit log and the per-address socket caps would see one visitor. The proxy appends the
address it saw to `X-Forwarded-For` (or RFC 7239 `Forwarded`); anyone can send that header too,
so it is believed only when the direct peer is one of TRUSTED_PROXIES, and then only up to the
first address that is not: the client is the right-most untrusted address of the chain.

One rule, two adapters: TrustedProxyMiddleware (Django, HTTP) and ProxiedClientMiddleware
(ASGI, HTTP and WebSocket, the outermost application in config/asgi.py) both rewrite the peer
address (REMOTE_ADDR, scope["client"]) so every reader downstream sees the client.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings

from config.sync_async import SyncAsyncMiddleware

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The direct peer before the rewrite, kept for logs and tests. Its presence also says "already
# resolved", so a request resolved by the ASGI middleware is not resolved a second time.
META_PEER = "PROXY_PEER_ADDR"
SCOPE_PEER = "proxy_peer"

# In TRUSTED_PROXIES: trust a peer that has no IP address (a Unix socket between proxy and app).
UNIX_SOCKET = "unix"

HEADERS = ("x-forwarded-for", "forwarded")


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], bool]:
    networks = []
    for entry in entries:
        if entry.strip().lower() == UNIX_SOCKET:
            continue
        networks.append(ipaddress.ip_network(entry.strip(), strict=False))
    return tuple(networks), any(e.strip().lower() == UNIX_SOCKET for e in entries)


def trusted_networks(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], bool]:
    """(networks, trust unix-socket peers) from TRUSTED_PROXIES; raises ValueError on a bad entry."""
    return _networks(tuple(entries))


def parse_address(text: str | None) -> IPAddress | None:
    """An address from a header entry or a peer: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`,
    a quoted form; IPv4-mapped IPv6 becomes IPv4. None for anything else (`unknown`, `_hidden`,
    garbage)."""
    if not text:
        return None
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_for_chain(value: str) -> list[str]:
    """X-Forwarded-For entries, left (the client, as claimed) to right (the last proxy's peer)."""
    return [part.strip() for part in value.split(",")]


def forwarded_chain(value: str) -> list[str]:
    """The `for=` values of an RFC 7239 Forwarded header, left to right; an element without a
    `for=` pair counts as an unknown hop."""
    chain = []
    for element in value.split(","):
        found = ""
        for pair in element.split(";"):
            name, _, pair_value = pair.partition("=")
            if name.strip().lower() == "for":
                found = pair_value.strip()
        chain.append(found)
    return chain


def client_address(
    *,
    peer: str | None,
    header: str | None,
    trusted: Sequence[str] | None = None,
    header_name: str | None = None,
) -> str | None:
    """The client's address: `peer` itself unless it is a trusted proxy; then walk the header's
    chain from the right past every trusted address and return the first untrusted one. An
    entry that is not an address stops the walk at the last address reached (a trusted proxy
    passed on something we cannot use; trusting what is left of it would trust the client)."""
    trusted = settings.TRUSTED_PROXIES if trusted is None else trusted
    header_name = (header_name or settings.TRUSTED_PROXY_HEADER).lower()
    networks, trust_unix = trusted_networks(trusted)

    peer_address = parse_address(peer)
    if peer_address is None:
        if not (trust_unix and header):
            return peer or None
        current: str | None = peer or None
    else:
        if not any(peer_address in network for network in networks):
            return str(peer_address)
        current = str(peer_address)
    if not header:
        return current
    chain = forwarded_chain(header) if header_name == "forwarded" else forwarded_for_chain(header)
    for entry in reversed(chain):
        address = parse_address(entry)
        if address is None:
            return current
        current = str(address)
        if not any(address in network for network in networks):
            return current
    return current  # every hop is trusted: the left-most is as far as we can see


def _header_from_meta(meta: dict[str, Any]) -> str | None:
    name = settings.TRUSTED_PROXY_HEADER.upper().replace("-", "_")
    return meta.get(f"HTTP_{name}")


def _header_from_scope(scope: dict[str, Any]) -> str | None:
    wanted = settings.TRUSTED_PROXY_HEADER.lower().encode("latin-1")
    values = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or []
        if name.lower() == wanted
    ]
    return ",".join(values) if values else None  # repeated headers form one chain, in order


def client_address_of_request(request) -> str | None:
    """The client address of a Django (or DRF) request, resolved once per request."""
    meta = request.META
    if META_PEER in meta:
        return meta.get("REMOTE_ADDR") or None
    return client_address(peer=meta.get("REMOTE_ADDR"), header=_header_from_meta(meta))


def client_address_of_scope(scope: dict[str, Any]) -> str | None:
    """The client address of an ASGI scope (HTTP or WebSocket), resolved once per scope."""
    client = scope.get("client") or [None]
    if SCOPE_PEER in scope:
        return client[0]
    return client_address(peer=client[0], header=_header_from_scope(scope))


class TrustedProxyMiddleware(SyncAsyncMiddleware):
    """First in MIDDLEWARE: REMOTE_ADDR becomes the client's address; the peer's is kept in
    META["PROXY_PEER_ADDR"]. Requests the ASGI middleware already resolved pass unchanged."""

    def _resolve(self, request) -> None:
        meta = request.META
        scope = getattr(request, "scope", None) or {}
        if META_PEER in meta:
            return
        if SCOPE_PEER in scope:
            meta[META_PEER] = scope[SCOPE_PEER] or ""
            return
        peer = meta.get("REMOTE_ADDR") or ""
        address = client_address(peer=peer, header=_header_from_meta(meta))
        meta[META_PEER] = peer
        meta["REMOTE_ADDR"] = address or ""

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        self._resolve(request)
        return self.get_response(request)

    async def __acall__(self, request):
        self._resolve(request)
        return await self.get_response(request)


class ProxiedClientMiddleware:
    """Outermost ASGI application: for HTTP and WebSocket scopes, scope["client"] becomes the
    client's address (port 0 when it came from a header); scope["proxy_peer"] keeps the peer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope.get("type") not in ("http", "websocket") or SCOPE_PEER in scope:
            return await self.app(scope, receive, send)
        client = scope.get("client")
        peer = client[0] if client else None
        address = client_address(peer=peer, header=_header_from_scope(scope))
        if address is not None and address != peer:
            client = [address, 0]
        return await self.app({**scope, "client": client, SCOPE_PEER: peer}, receive, send)

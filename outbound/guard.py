"""The address guard for staff-entered URLs (AI endpoints, knowledge bases, order sources,
helpdesks): refuse hosts that resolve to this machine or its private networks.

Django-free: callers say whether private addresses are allowed (ALLOW_PRIVATE_NETWORK_URLS, see
outbound/policy.py). Two checks use it: at save time every address a host name resolves to, and
at request time the address a connection actually reached (httpx's trace hook), so a name that
resolves to a public address when saved and to 169.254.169.254 later (DNS rebinding) is still
refused before a byte of the request is sent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The host is (or resolves to) an address staff-entered URLs may not reach."""


class RefusedConnection(httpx.ConnectError):
    """Request time: the connection reached an off-limits address and was closed unused.

    A ConnectError, so every client's existing "could not connect" handling applies; callers that
    want to say more (no retry, a clearer log line) catch this subclass first.
    """


# --- the process's policy -----------------------------------------------------------------------
# The AI clients are Django-free, and built in several places (the worker's runtime, analyses,
# the admin's probes, the benchmark). Rather than thread a flag through each builder (a missed
# one would be silently unguarded), the process sets the policy once: outbound/policy.py does on
# import, which every Django process does when chatbots.models loads. Until then, and in a
# process without Django, private addresses are refused: the guard fails closed.


def _refuse_private() -> bool:
    return False


_policy: Callable[[], bool] = _refuse_private


def configure(allowed: Callable[[], bool]) -> None:
    """Say how this process learns whether private addresses are allowed (asked per connection,
    so a test's settings override takes effect at once)."""
    global _policy
    _policy = allowed


def private_allowed() -> bool:
    return bool(_policy())


def address_kind(ip: str) -> str | None:
    """What makes this address off limits ("loopback", "private", …), or None for a public one."""
    try:
        addr: Address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "unparseable"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:  # 169.254/16 (cloud metadata at 169.254.169.254), fe80::/10
        return "link-local"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_multicast:
        return "multicast"
    if addr.is_private:  # 10/8, 172.16/12, 192.168/16, fc00::/7, 0/8, 100.64/10 reserved, …
        return "private"
    if addr.is_reserved or not addr.is_global:
        return "reserved"
    return None


def _refuse(host: str, ip: str, kind: str) -> AddressRefused:
    shown = host if host == ip else f"{host} ({ip})"
    return AddressRefused(
        f"{shown} is a {kind} address; this server does not connect to its own machine or "
        "private networks for URLs entered in the admin."
    )


def host_check(host: str, *, allow_private: bool, port: int = 443) -> None:
    """Raise AddressRefused when the host is, or resolves to, any off-limits address.

    Every address counts: a name answering both a public and a private address is refused.
    A name that does not resolve (yet) passes: reachability is the connection test's business,
    and the request-time check still sees the address finally connected to.
    """
    if allow_private:
        return
    host = host.strip().strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return
    for *_, sockaddr in infos:
        ip = str(sockaddr[0])
        kind = address_kind(ip)
        if kind:
            raise _refuse(host, ip, kind)


def url_check(url: str, *, allow_private: bool) -> None:
    """host_check for the host of a URL (nothing to check in an empty or host-less one)."""
    if allow_private or not url:
        return
    parts = urlsplit(url.strip())
    if parts.hostname:
        port = parts.port if _port_ok(parts) else None
        host_check(
            parts.hostname,
            allow_private=False,
            port=port or (80 if parts.scheme == "http" else 443),
        )


def _port_ok(parts) -> bool:
    try:
        parts.port  # noqa: B018 - raises on a port outside 0-65535
    except ValueError:
        return False
    return True


def unreachable(where: str) -> str:
    """The one sentence "Test connection" gives for a service it could not get an HTTP answer from.

    A refused connection, a closed or silent port, a reset and a port speaking something else all
    read alike, so the admin cannot be used to map which ports of a host are open. (HTTP answers,
    such as 401 or 404, come from a real web service and may be told apart.)
    """
    return f"Could not reach the service at {where}: no answer in a form we understand."


def url_refusal(url: str) -> str | None:
    """A connection test's first step: the sentence refusing this URL under the process's policy
    (resolving the name, connecting nowhere), or None when it may be tried."""
    try:
        url_check(url, allow_private=private_allowed())
    except AddressRefused as exc:
        return str(exc)
    return None


def peer_check(host: str, peer_ip: str, *, allow_private: bool) -> None:
    """Request time: refuse a connection that reached an off-limits address."""
    if allow_private:
        return
    kind = address_kind(peer_ip)
    if kind:
        raise _refuse(host, peer_ip, kind)


# --- httpx hooks -------------------------------------------------------------------------------
# A request event hook puts a trace callback on each request; httpcore (and our LeanTransport)
# call it when a new connection is made, with the network stream, before the request is written.
# A reused keep-alive connection was checked when it was made.


def _peer_of(info: dict) -> str | None:
    stream = info.get("return_value")
    if stream is None:
        return None
    # httpcore's streams say "server_addr"; an asyncio transport (LeanTransport) "peername".
    addr = stream.get_extra_info("server_addr") or stream.get_extra_info("peername")
    if not addr:
        sock = stream.get_extra_info("socket")
        addr = sock.getpeername() if sock is not None else None
    return str(addr[0]) if addr else None


def _refusal(request: httpx.Request, name: str, info: dict, allowed: bool) -> Exception | None:
    """The error for a connection that reached an off-limits address, or None to go on."""
    if name != "connection.connect_tcp.complete" or allowed:
        return None
    peer = _peer_of(info)
    if peer is None:
        return RefusedConnection("could not tell which address was reached", request=request)
    try:
        peer_check(request.url.host, peer, allow_private=False)
    except AddressRefused as exc:
        return RefusedConnection(str(exc), request=request)
    return None


def sync_hooks(allowed: Callable[[], bool] | None = None) -> dict[str, list]:
    """event_hooks for an httpx.Client: refuse connections that reached off-limits addresses.

    `allowed` defaults to the process's policy (configure())."""
    allowed = allowed or private_allowed

    def on_request(request: httpx.Request) -> None:
        previous = request.extensions.get("trace")

        def trace(name: str, info: dict) -> None:
            if previous is not None:
                previous(name, info)
            refusal = _refusal(request, name, info, allowed())
            if refusal is not None:
                stream = info.get("return_value")
                if stream is not None and hasattr(stream, "close"):
                    stream.close()  # httpcore would leave the socket to the garbage collector
                raise refusal

        request.extensions["trace"] = trace

    return {"request": [on_request]}


def async_hooks(allowed: Callable[[], bool] | None = None) -> dict[str, list]:
    """event_hooks for an httpx.AsyncClient (the same check)."""
    allowed = allowed or private_allowed

    async def on_request(request: httpx.Request) -> None:
        previous = request.extensions.get("trace")

        async def trace(name: str, info: dict) -> None:
            if previous is not None:
                await previous(name, info)
            refusal = _refusal(request, name, info, allowed())
            if refusal is not None:
                stream = info.get("return_value")
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()  # LeanTransport discards its own; httpcore's would linger
                raise refusal

        request.extensions["trace"] = trace

    return {"request": [on_request]}

"""Behind a proxy: the client address is the right-most untrusted address of X-Forwarded-For
(or Forwarded) only when the direct peer is a trusted proxy — for rate limits, the login
lockout, the audit log and the per-address socket caps, over HTTP and WebSocket alike."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model

from accounts.models import AuditEvent
from config.client_address import ProxiedClientMiddleware, client_address
from config.socket_limits import AddressSockets, SocketLimitMiddleware

PROXY = "10.0.0.2"
VISITOR_A = "203.0.113.10"
VISITOR_B = "203.0.113.20"
STRANGER = "198.51.100.9"


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "fd00::/8"]
    settings.TRUSTED_PROXY_HEADER = "x-forwarded-for"
    return settings


# --- the rule ------------------------------------------------------------------------------------


def resolve(peer, header, header_name="x-forwarded-for"):
    return client_address(
        peer=peer, header=header, trusted=["10.0.0.0/24", "fd00::/8"], header_name=header_name
    )


def test_an_untrusted_peer_is_the_client_whatever_header_it_sends():
    assert resolve(STRANGER, "1.2.3.4") == STRANGER
    assert resolve(STRANGER, "10.0.0.2") == STRANGER


def test_a_trusted_peer_gives_the_right_most_address_it_does_not_trust():
    # The visitor put 1.2.3.4 in the header themselves; our proxy appended what it saw.
    assert resolve(PROXY, f"1.2.3.4, {VISITOR_A}") == VISITOR_A


def test_several_trusted_hops_are_walked_past():
    assert resolve(PROXY, f"1.2.3.4, {VISITOR_A}, 10.0.0.7, 10.0.0.3") == VISITOR_A
    assert resolve("fd00::5", f"{VISITOR_B}, 10.0.0.3") == VISITOR_B


def test_a_trusted_peer_without_the_header_is_itself_the_client():
    assert resolve(PROXY, None) == PROXY
    assert resolve(PROXY, "") == PROXY


def test_a_chain_of_trusted_addresses_only_gives_its_left_most():
    assert resolve(PROXY, "10.0.0.9, 10.0.0.3") == "10.0.0.9"


@pytest.mark.parametrize(
    "header",
    ["garbage", "unknown", "1.2.3.4, not-an-ip", ",", "\x00", "999.1.1.1", "1.2.3.4,,"],
)
def test_a_malformed_entry_stops_the_walk_at_the_trusted_hop_that_passed_it_on(header):
    assert resolve(PROXY, header) == PROXY


def test_a_malformed_entry_left_of_the_visitor_does_not_matter():
    assert resolve(PROXY, f"garbage, {VISITOR_A}") == VISITOR_A


def test_ports_brackets_and_ipv4_mapped_addresses_are_understood():
    assert resolve(PROXY, f"{VISITOR_A}:51234") == VISITOR_A
    assert resolve(PROXY, "[2001:db8::1]:443") == "2001:db8::1"
    assert resolve(PROXY, "2001:db8::1") == "2001:db8::1"
    assert resolve(f"::ffff:{PROXY}", f"::ffff:{VISITOR_A}") == VISITOR_A


def test_the_rfc_7239_forwarded_header_is_read_when_configured():
    header = 'for=1.2.3.4;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.2'
    assert resolve(PROXY, header, "forwarded") == "2001:db8:cafe::17"
    assert resolve(PROXY, "for=_hidden", "forwarded") == PROXY
    assert resolve(PROXY, "proto=https", "forwarded") == PROXY
    assert resolve(STRANGER, f"for={VISITOR_A}", "forwarded") == STRANGER


def test_a_unix_socket_peer_is_trusted_only_when_listed():
    assert client_address(peer=None, header=VISITOR_A, trusted=[]) is None
    assert client_address(peer=None, header=VISITOR_A, trusted=["unix"]) == VISITOR_A


# --- HTTP: rate limits, lockout, audit -----------------------------------------------------------


def create_session(client, bot, *, peer, forwarded_for=None):
    headers = {"X-Widget-Key": bot.widget_key, "Origin": bot.allowed_origins[0]}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return client.post(
        "/api/sessions",
        {"chatbot_id": bot.public_id},
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR=peer,
    )


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_visitor_has_their_own_rate_limit(
    client, make_chatbot, behind_proxy
):
    behind_proxy.SESSION_CREATE_RATE_LIMIT = "2/minute"
    bot = make_chatbot()
    statuses = [
        create_session(client, bot, peer=PROXY, forwarded_for=address).status_code
        for address in (VISITOR_A, VISITOR_A, VISITOR_B, VISITOR_B, VISITOR_A)
    ]
    assert statuses == [201, 201, 201, 201, 429]


@pytest.mark.django_db
def test_an_untrusted_peer_cannot_escape_its_rate_limit_by_spoofing_the_header(
    client, make_chatbot, behind_proxy
):
    behind_proxy.SESSION_CREATE_RATE_LIMIT = "2/minute"
    bot = make_chatbot()
    statuses = [
        create_session(client, bot, peer=STRANGER, forwarded_for=address).status_code
        for address in (VISITOR_A, VISITOR_B, "192.0.2.33")
    ]
    assert statuses == [201, 201, 429]


@pytest.mark.django_db
def test_with_no_trusted_proxies_the_header_is_ignored(client, make_chatbot, settings):
    settings.TRUSTED_PROXIES = []
    settings.SESSION_CREATE_RATE_LIMIT = "1/minute"
    bot = make_chatbot()
    assert create_session(client, bot, peer=PROXY, forwarded_for=VISITOR_A).status_code == 201
    assert create_session(client, bot, peer=PROXY, forwarded_for=VISITOR_B).status_code == 429


@pytest.mark.django_db
def test_a_malformed_header_from_the_proxy_gets_no_500(client, make_chatbot, behind_proxy):
    bot = make_chatbot()
    response = create_session(client, bot, peer=PROXY, forwarded_for="\u00e9\u00e9, ,,[")
    assert response.status_code == 201


@pytest.mark.django_db
def test_the_login_lockout_and_the_audit_log_record_the_visitor_not_the_proxy(client, behind_proxy):
    get_user_model().objects.create_user("ops", password="right-pw-1234567", is_staff=True)
    for _ in range(5):
        client.post(
            "/admin/login/",
            {"username": "ops", "password": "wrong"},
            REMOTE_ADDR=PROXY,
            headers={"X-Forwarded-For": VISITOR_A},
        )
    locked = client.post(
        "/admin/login/",
        {"username": "ops", "password": "right-pw-1234567"},
        REMOTE_ADDR=PROXY,
        headers={"X-Forwarded-For": VISITOR_A},
    )
    assert locked.status_code == 429
    # Another visitor behind the same proxy is not locked out by the first one's typos.
    other = client.post(
        "/admin/login/",
        {"username": "ops", "password": "right-pw-1234567"},
        REMOTE_ADDR=PROXY,
        headers={"X-Forwarded-For": VISITOR_B},
    )
    assert other.status_code == 302
    failed = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED)
    assert {event.ip for event in failed} == {VISITOR_A}
    signed_in = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN)
    assert signed_in.ip == VISITOR_B


# --- ASGI: the same rule for HTTP and WebSocket scopes -------------------------------------------


async def echo_client(scope, receive, send):
    """Accepts a socket (or answers a request) and tells which client address it saw."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(scope["client"])})
        await receive()  # hold the socket open until the test disconnects
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(scope["client"]).encode()})


def scope_of(kind, *, peer, forwarded_for=None):
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    scope = {"type": kind, "path": "/ws/x", "query_string": b"", "headers": headers}
    scope["client"] = [peer, 40000]
    if kind == "http":
        scope.update(method="GET", http_version="1.1", scheme="http")
    return scope


async def open_socket(app, **scope):
    communicator = ApplicationCommunicator(app, scope_of("websocket", **scope))
    await communicator.send_input({"type": "websocket.connect"})
    first = await communicator.receive_output(5)
    if first["type"] == "websocket.close":
        return communicator, None
    seen = await communicator.receive_output(5)
    return communicator, json.loads(seen["text"])[0]


def test_a_websocket_behind_a_trusted_proxy_sees_the_visitors_address(behind_proxy):
    app = ProxiedClientMiddleware(echo_client)

    async def run():
        trusted, seen = await open_socket(app, peer=PROXY, forwarded_for=f"1.1.1.1, {VISITOR_A}")
        spoofed, seen_spoofed = await open_socket(app, peer=STRANGER, forwarded_for=VISITOR_A)
        for communicator in (trusted, spoofed):
            await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            await communicator.wait(5)
        return seen, seen_spoofed

    assert async_to_sync(run)() == (VISITOR_A, STRANGER)


def test_an_http_request_through_the_asgi_middleware_sees_the_visitors_address(behind_proxy):
    app = ProxiedClientMiddleware(echo_client)

    async def run(peer, forwarded_for):
        communicator = ApplicationCommunicator(
            app, scope_of("http", peer=peer, forwarded_for=forwarded_for)
        )
        await communicator.send_input({"type": "http.request", "body": b""})
        await communicator.receive_output(5)
        body = await communicator.receive_output(5)
        return json.loads(body["body"])[0]

    assert async_to_sync(run)(PROXY, VISITOR_A) == VISITOR_A
    assert async_to_sync(run)(STRANGER, VISITOR_A) == STRANGER
    assert async_to_sync(run)(PROXY, "not an address") == PROXY


def test_the_socket_cap_counts_each_visitor_behind_the_proxy_separately(behind_proxy):
    behind_proxy.WS_MAX_SOCKETS_PER_ADDRESS = 1
    behind_proxy.WS_MAX_UNAUTHENTICATED_PER_ADDRESS = 0
    sockets = AddressSockets()
    app = ProxiedClientMiddleware(SocketLimitMiddleware(echo_client, sockets))

    async def run():
        opened = [
            await open_socket(app, peer=PROXY, forwarded_for=address)
            for address in (VISITOR_A, VISITOR_B, VISITOR_A)
        ]
        spoofed = [
            await open_socket(app, peer=STRANGER, forwarded_for=address)
            for address in (VISITOR_A, VISITOR_B)
        ]
        counts = dict(sockets.open)
        for communicator, seen in opened + spoofed:
            if seen is not None:
                await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            await communicator.wait(5)
        return [seen for _, seen in opened], [seen for _, seen in spoofed], counts

    opened, spoofed, counts = async_to_sync(run)()
    assert opened == [VISITOR_A, VISITOR_B, None]  # the same visitor's second socket is refused
    assert spoofed == [STRANGER, None]  # a spoofed header does not buy a second slot
    assert counts == {VISITOR_A: 1, VISITOR_B: 1, STRANGER: 1}
    assert not sockets.open


def test_the_socket_cap_resolves_the_address_itself_when_used_without_the_asgi_middleware(
    behind_proxy,
):
    behind_proxy.WS_MAX_SOCKETS_PER_ADDRESS = 1
    behind_proxy.WS_MAX_UNAUTHENTICATED_PER_ADDRESS = 0
    sockets = AddressSockets()
    app = SocketLimitMiddleware(echo_client, sockets)

    async def run():
        first = await open_socket(app, peer=PROXY, forwarded_for=VISITOR_A)
        counts = dict(sockets.open)
        await first[0].send_input({"type": "websocket.disconnect", "code": 1000})
        await first[0].wait(5)
        return counts

    assert async_to_sync(run)() == {VISITOR_A: 1}

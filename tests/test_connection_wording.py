""" "Test connection" without a port scanner: a closed port, a port speaking something other than
HTTP, a silent port and a reset all give staff the same sentence, for every kind of connection
(AI endpoints, Pinecone, order sources, helpdesks); HTTP answers stay specific."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from aiclients.probe import flowise_ping, probe_flowise, probe_openai, probe_pinecone

SAME = "Could not reach the service at 127.0.0.1: no answer in a form we understand."
FLOW = "3f2a1b0c-1d2e-4f50-8a9b-0c1d2e3f4a5b"
KEY = "sk-proj-SECRETSECRET0123456789abcd"


class RawServer:
    """A TCP port that does not speak HTTP: it writes garbage, stays silent, or resets."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe binary noise\r\n\r\n")
                conn.close()
            elif self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # linger 0: an RST, not a FIN
            else:  # silent: accept, read, never answer
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["closed", "garbage", "silent", "reset"])
def dead_url(request) -> Iterator[str]:
    if request.param == "closed":
        yield f"http://127.0.0.1:{closed_port()}"
        return
    server = RawServer(request.param)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def test_a_flowise_probe_says_the_same_whatever_the_port_does(dead_url):
    assert probe_flowise(dead_url, KEY, FLOW, timeout=1) == (False, SAME)
    assert flowise_ping(dead_url, timeout=1) == (False, SAME)


def test_an_openai_probe_says_the_same_whatever_the_port_does(dead_url):
    assert probe_openai(dead_url + "/v1", KEY, "gpt-4o-mini", timeout=1) == (False, SAME)


def test_a_pinecone_probe_says_the_same_whatever_the_port_does(dead_url):
    assert probe_pinecone(KEY, "kb", control_url=dead_url, timeout=1) == (False, SAME)


@pytest.mark.django_db
def test_an_order_source_test_says_the_same_whatever_the_port_does(
    dead_url, settings, make_chatbot
):
    from orders.models import OrderSource
    from orders.services import order_source_connection_test
    from orders.tests.platforms import PLATFORMS
    from tests.fakes.shopify import FakeShopify

    settings.ORDERS_MAX_ATTEMPTS = 2
    settings.ORDERS_RETRY_BACKOFF = 0.01
    with FakeShopify() as shopify:
        source = PLATFORMS["shopify"].make_source(shopify, make_chatbot())
    OrderSource.objects.filter(pk=source.pk).update(base_url=dead_url, timeout=1)
    source.refresh_from_db()

    # No request count or time either: those would tell a silent port from a closed one.
    assert order_source_connection_test(source=source) == (False, f"{SAME} (order search)")


@pytest.mark.django_db
def test_a_helpdesk_test_says_the_same_whatever_the_port_does(
    dead_url, settings, monkeypatch, make_chatbot
):
    from helpdesk import clients
    from helpdesk.models import HelpdeskConnection
    from helpdesk.services import helpdesk_connection_test
    from helpdesk.tests.conftest import connect
    from tests.fakes.freshdesk import FakeFreshdesk

    settings.HELPDESK_TIMEOUT = 1
    monkeypatch.setattr(clients, "_client", None)  # built again with the short timeout
    with FakeFreshdesk() as freshdesk:
        connection = connect(make_chatbot(language="en"), freshdesk)
    HelpdeskConnection.objects.filter(pk=connection.pk).update(domain=dead_url)
    connection.refresh_from_db()

    assert helpdesk_connection_test(connection=connection) == (False, SAME)


def test_http_answers_stay_specific():
    from tests.fakes import FakeOpenAI

    with FakeOpenAI(api_key=KEY) as openai:
        _, wrong_key = probe_openai(openai.url + "/v1", "sk-wrong-0123456789", "m", timeout=2)
        _, no_v1 = probe_openai(openai.url, KEY, "gpt-4o-mini", timeout=2)
    assert "API key was rejected" in wrong_key
    assert "does not look like an OpenAI-compatible API" in no_v1


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://169.254.169.254", "http://[::1]:8080"]
)
def test_with_the_setting_off_a_private_address_is_named_before_any_connection(settings, url):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False

    ok, message = probe_flowise(url, KEY, FLOW, timeout=1)

    assert ok is False
    assert "this server does not connect to its own machine or private networks" in message

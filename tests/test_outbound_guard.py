"""The address guard: staff-entered URLs may not reach this machine or private networks unless
ALLOW_PRIVATE_NETWORK_URLS allows it; checked on save and on the address actually connected to."""

from __future__ import annotations

import asyncio
import http.server
import threading

import httpx
import pytest

from aiclients.transport import LeanTransport
from outbound import guard


@pytest.fixture(scope="module")
def local_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


REFUSED = [
    ("http://127.0.0.1:8101", "loopback"),
    ("http://10.0.0.1/api", "private"),
    ("http://172.16.5.4", "private"),
    ("https://192.168.1.10", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:8080", "loopback"),
    ("http://[fd12:3456::1]", "private"),
    ("http://[fe80::1]", "link-local"),
    ("http://0.0.0.0:80", "unspecified"),
    ("http://224.0.0.1", "multicast"),
    ("http://[::ffff:127.0.0.1]", "loopback"),
    ("http://localhost:8000", "loopback"),  # a name that resolves to 127.0.0.1
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_a_url_to_this_machine_or_a_private_network_is_refused(url, kind):
    with pytest.raises(guard.AddressRefused, match=f"is a {kind} address"):
        guard.url_check(url, allow_private=False)


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_the_same_urls_are_allowed_when_the_setting_allows_private_networks(url, kind):
    guard.url_check(url, allow_private=True)


def test_a_hostname_says_which_address_it_resolved_to():
    with pytest.raises(guard.AddressRefused) as refused:
        guard.url_check("http://localhost:8000", allow_private=False)
    assert str(refused.value).startswith("localhost (127.0.0.1) is a loopback address")


def test_a_public_address_and_an_empty_url_pass():
    guard.url_check("https://93.184.215.14/v1", allow_private=False)
    guard.url_check("https://[2606:4700::1111]", allow_private=False)
    guard.url_check("", allow_private=False)


def test_a_host_that_does_not_resolve_passes_the_save_check():
    guard.host_check("no-such-host.invalid", allow_private=False)


def test_a_connection_that_reaches_loopback_is_refused_before_the_request(local_server):
    hits = []
    with (
        httpx.Client(event_hooks=guard.sync_hooks(lambda: False)) as client,
        pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1 is a loopback address"),
    ):
        client.get(local_server, extensions={"trace": lambda n, i: hits.append(n)})
    assert "http11.send_request_headers.started" not in hits


def test_a_hostname_resolved_at_request_time_is_checked_on_the_address_reached(local_server):
    # Whatever "localhost" resolved to when it was saved, the connection's peer decides.
    url = local_server.replace("127.0.0.1", "localhost")
    with (
        httpx.Client(event_hooks=guard.sync_hooks(lambda: False)) as client,
        pytest.raises(httpx.ConnectError, match="loopback address"),
    ):
        client.get(url)


def test_the_request_time_check_lets_private_addresses_through_when_allowed(local_server):
    with httpx.Client(event_hooks=guard.sync_hooks(lambda: True)) as client:
        assert client.get(local_server).text == "ok"


def test_the_async_hook_refuses_on_httpx_s_own_transport(local_server):
    async def go():
        async with httpx.AsyncClient(event_hooks=guard.async_hooks(lambda: False)) as client:
            await client.get(local_server)

    with pytest.raises(httpx.ConnectError, match="loopback address"):
        asyncio.run(go())


def test_the_async_hook_refuses_on_the_lean_streaming_transport(local_server):
    async def go(allowed: bool) -> str:
        transport = LeanTransport(max_connections=2)
        async with httpx.AsyncClient(
            transport=transport, event_hooks=guard.async_hooks(lambda: allowed)
        ) as client:
            return (await client.get(local_server)).text

    with pytest.raises(httpx.ConnectError, match="loopback address"):
        asyncio.run(go(False))
    assert asyncio.run(go(True)) == "ok"


# --- on save: the admin's models ---------------------------------------------------------------


@pytest.fixture
def private_off(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8101", "http://10.0.0.1", "http://169.254.169.254", "http://[::1]"]
)
def test_an_ai_endpoint_on_a_private_address_is_refused_with_a_sentence(private_off, url):
    from django.core.exceptions import ValidationError

    from chatbots.models import AIEndpoint

    endpoint = AIEndpoint(name="x", kind=AIEndpoint.Kind.FLOWISE, base_url=url)
    with pytest.raises(ValidationError) as refused:
        endpoint.clean()
    assert "does not connect to its own machine or private networks" in str(
        refused.value.message_dict["base_url"]
    )


@pytest.mark.django_db
def test_an_ai_endpoint_on_localhost_is_allowed_when_the_setting_allows_it(settings):
    from chatbots.models import AIEndpoint

    settings.ALLOW_PRIVATE_NETWORK_URLS = True
    AIEndpoint(name="x", kind=AIEndpoint.Kind.FLOWISE, base_url="http://localhost:8101").clean()


@pytest.mark.django_db
def test_a_pinecone_host_and_control_url_are_checked(private_off):
    from django.core.exceptions import ValidationError

    from chatbots.models import KnowledgeBase

    kb = KnowledgeBase(
        name="kb",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="i",
        host="localhost",
        control_url="http://169.254.169.254",
    )
    with pytest.raises(ValidationError) as refused:
        kb.clean()
    assert set(refused.value.message_dict) >= {"host", "control_url"}


@pytest.mark.django_db
def test_an_order_source_base_and_auth_url_are_checked(private_off):
    from django.core.exceptions import ValidationError

    from orders.models import OrderSource

    source = OrderSource(base_url="http://10.1.2.3", auth_url="http://[::1]/token")
    with pytest.raises(ValidationError) as refused:
        source.clean()
    assert "is a private address" in str(refused.value.message_dict["base_url"])
    assert "is a loopback address" in str(refused.value.message_dict["auth_url"])


@pytest.mark.django_db
def test_a_helpdesk_domain_is_checked(private_off):
    from django.core.exceptions import ValidationError

    from helpdesk.models import HelpdeskConnection

    connection = HelpdeskConnection(domain="https://127.0.0.1:9000", api_key="k")
    with pytest.raises(ValidationError) as refused:
        connection.clean()
    assert "is a loopback address" in str(refused.value.message_dict["domain"])

"""The address guard at request time, in the product's clients: with ALLOW_PRIVATE_NETWORK_URLS
off, a URL that leads to this machine when the request is made is refused before a byte of the
request is written, whatever the URL looked like when it was saved (DNS rebinding)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from aiclients import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamError,
    UpstreamRequest,
    make_async_client,
    stream_openai,
)
from aiclients import errors as E
from aiclients.pinecone import describe_index
from tests.fakes import FakeOpenAI
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.pinecone import FakePinecone
from tests.fakes.shopify import FakeShopify

KEY = "sk-proj-SECRETSECRET0123456789abcd"
RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05, retry_after_cap=5)


@pytest.fixture
def private_off(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False


@pytest.fixture
def openai():
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


def stream(base_url: str, *, lean: bool = True) -> tuple[str, UpstreamError | None]:
    """One answer through the worker's pooled client, as the runner streams it."""
    req = UpstreamRequest(
        base_url=base_url + "/v1", api_key=KEY, target="gpt-4o-mini", question="Is it in stock?"
    )
    text: list[str] = []

    async def main() -> UpstreamError | None:
        async with make_async_client(
            max_connections=2, connect_timeout=1, read_timeout=5, trust_env=False, lean=lean
        ) as client:
            gen = stream_openai(
                client,
                req,
                stats=CallStats(),
                timeouts=Timeouts(connect=1, read_idle=2, total=10),
                retry=RETRY,
            )
            try:
                async with aclosing(gen) as events:
                    async for event in events:
                        if event.kind == "token":
                            text.append(event.text)
            except UpstreamError as exc:
                return exc
        return None

    error = asyncio.run(main())
    return "".join(text), error


@pytest.mark.parametrize("lean", [True, False], ids=["lean-transport", "httpx-transport"])
def test_the_worker_s_client_refuses_an_ai_service_on_loopback_without_retrying(
    private_off, openai, lean
):
    text, error = stream(openai.url, lean=lean)

    assert text == ""
    assert error is not None and error.code == E.UPSTREAM_UNAVAILABLE
    assert "127.0.0.1 is a loopback address" in error.detail
    assert error.retryable is False and "not set up correctly" in error.message
    assert openai.requests == []  # refused before the request was written, and not retried


def test_a_host_name_is_judged_by_the_address_it_leads_to_at_request_time(private_off, openai):
    # "localhost" stands for a name that was public when saved and points here now.
    _, error = stream(openai.url.replace("127.0.0.1", "localhost"))

    assert error is not None and "localhost (127.0.0.1) is a loopback address" in error.detail
    assert openai.requests == []


def test_the_worker_s_client_reaches_loopback_when_the_setting_allows_it(settings, openai):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True

    text, error = stream(openai.url)

    assert error is None and text
    assert len(openai.requests) == 1


def test_the_setting_is_read_per_connection_not_when_the_client_was_built(settings, openai):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True

    async def main() -> int:
        async with make_async_client(
            max_connections=1, connect_timeout=1, read_timeout=5, trust_env=False
        ) as client:
            settings.ALLOW_PRIVATE_NETWORK_URLS = False
            with pytest.raises(Exception, match="loopback address"):
                await client.get(openai.url + "/v1/models")
        return len(openai.requests)

    assert asyncio.run(main()) == 0


def test_the_pinecone_client_refuses_loopback_at_request_time(private_off):
    with FakePinecone(api_key=KEY) as pinecone:
        with pytest.raises(UpstreamError) as refused:
            describe_index(api_key=KEY, index_name="kb", control_url=pinecone.url, timeout=2)
        assert pinecone.requests == []
    assert "loopback address" in refused.value.detail


@pytest.mark.django_db
def test_an_order_lookup_saved_while_allowed_is_refused_once_the_setting_is_off(
    settings, make_chatbot, caplog
):
    from orders.tests.conftest import run_lookup
    from orders.tests.platforms import PLATFORMS

    settings.ORDERS_RETRY_BACKOFF = 0.01
    with FakeShopify() as shopify:
        source = PLATFORMS["shopify"].make_source(shopify, make_chatbot())  # saved: allowed
        settings.ALLOW_PRIVATE_NETWORK_URLS = False

        outcome = run_lookup(source, "1001", email="a@example.com")

        # Staff read this in the failure log: worded like any unreachable port (see
        # test_connection_wording.py); the log line for operators names the address.
        assert outcome.result == "unavailable"
        assert outcome.error.message.startswith("Could not reach the service at 127.0.0.1")
        assert shopify.requests == []
        assert len(outcome.calls) == 1  # no retry: the same name leads to the same place
        assert "127.0.0.1 is a loopback address" in caplog.text  # for operators

        settings.ALLOW_PRIVATE_NETWORK_URLS = True
        assert run_lookup(source, "1001", email="a@example.com").result != "unavailable"
        assert shopify.requests


@pytest.mark.django_db
def test_a_helpdesk_ticket_is_refused_at_request_time_and_not_queued_for_retry(
    settings, make_chatbot, caplog
):
    from helpdesk import clients
    from helpdesk.services import helpdesk_config
    from helpdesk.tests.conftest import connect

    ticket = clients.TicketRequest(
        subject="Where is my order?",
        description_html="<p>1001</p>",
        email="a@example.com",
        name="A",
        external_id="v1",
        priority=2,
        source="chat",
        tags=[],
    )

    with FakeFreshdesk() as freshdesk:
        connection = connect(make_chatbot(language="en"), freshdesk)  # saved: allowed
        config = helpdesk_config(connection)
        settings.ALLOW_PRIVATE_NETWORK_URLS = False

        with pytest.raises(clients.HelpdeskError) as refused:
            clients.ticket_create(config, ticket)

        assert refused.value.message.startswith("Could not reach the service at 127.0.0.1")
        assert refused.value.retryable is False  # unlike a helpdesk that is down for a while
        assert "127.0.0.1 is a loopback address" in caplog.text  # for operators
        assert freshdesk.requests == []

        settings.ALLOW_PRIVATE_NETWORK_URLS = True
        assert clients.connection_check(config).startswith("Connected to Freshdesk")

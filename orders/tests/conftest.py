"""Fixtures of the orders tests: fast retry settings, platform fakes, a lookup helper."""

from __future__ import annotations

import asyncio

import pytest

from orders.client import new_client
from orders.selectors import order_source_config
from orders.services import LookupOutcome, order_lookup
from orders.tests.platforms import PLATFORMS


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.ORDERS_RETRY_BACKOFF = 0.01
    settings.ORDERS_LOOKUP_MIN_SECONDS = 0
    settings.ORDERS_MAX_RETRY_WAIT = 2.0


@pytest.fixture(params=sorted(PLATFORMS))
def platform(request):
    spec = PLATFORMS[request.param]
    with spec.fake() as fake:
        yield spec, fake


def run_lookup(source, order_number: str, email: str = "", postcode: str = "") -> LookupOutcome:
    config = order_source_config(source, language=source.chatbot.language)

    async def main() -> LookupOutcome:
        async with new_client(timeout=config.timeout) as client:
            return await order_lookup(
                source=config,
                order_number=order_number,
                email=email,
                postcode=postcode,
                client=client,
            )

    return asyncio.run(main())

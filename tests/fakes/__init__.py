"""Local HTTP fakes of the external AI services (Flowise, OpenAI, Pinecone) for tests and benchmarks.

The servers are imported lazily so `python -m tests.fakes.flowise` does not load its module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

from tests.fakes._server import (
    Emission,
    RecordedRequest,
    Scenario,
    decode_data_url,
    describe_image,
    tokenize,
)

_SERVERS = {
    "FakeFlowise": "tests.fakes.flowise",
    "FakeOpenAI": "tests.fakes.openai",
    "FakePinecone": "tests.fakes.pinecone",
    "FakeShopify": "tests.fakes.shopify",
    "FakeMagento": "tests.fakes.magento",
    "FakeCommercetools": "tests.fakes.commercetools",
    "FakeFreshdesk": "tests.fakes.freshdesk",
    "FakeZendesk": "tests.fakes.zendesk",
}

__all__ = [
    "Emission",
    "FakeCommercetools",
    "FakeFlowise",
    "FakeFreshdesk",
    "FakeMagento",
    "FakeOpenAI",
    "FakePinecone",
    "FakeShopify",
    "FakeZendesk",
    "RecordedRequest",
    "Scenario",
    "decode_data_url",
    "describe_image",
    "tokenize",
]


def __getattr__(name: str) -> Any:
    if name in _SERVERS:
        return getattr(importlib.import_module(_SERVERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""One module per shop platform; `provider_for` picks the class for an OrderSource kind."""

from __future__ import annotations

from orders.providers.commercetools import CommercetoolsProvider
from orders.providers.common import Provider
from orders.providers.generic import GenericProvider
from orders.providers.magento import MagentoProvider
from orders.providers.shopify import ShopifyProvider, ShopifyRestProvider

PROVIDERS: dict[str, type[Provider]] = {
    "shopify": ShopifyProvider,
    "shopify_rest": ShopifyRestProvider,
    "magento": MagentoProvider,
    "commercetools": CommercetoolsProvider,
    "generic": GenericProvider,
    "bevco": GenericProvider,
}


def provider_class(kind: str) -> type[Provider]:
    return PROVIDERS[kind]

"""Where a chatbot looks up orders: one OrderSource per shop platform connection."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from chatbots.models import Chatbot
from chatbots.secrets import EncryptedSecretField
from orders.providers import PROVIDERS
from orders.providers.generic import connector_config, connector_credentials
from orders.providers.shopify import version_warning
from outbound.policy import url_errors


class OrderSource(models.Model):
    class Kind(models.TextChoices):
        SHOPIFY = "shopify", "Shopify (GraphQL Admin API)"
        SHOPIFY_REST = "shopify_rest", "Shopify (legacy REST Admin API)"
        MAGENTO = "magento", "Magento 2 / Adobe Commerce (REST)"
        COMMERCETOOLS = "commercetools", "commercetools"
        BEVCO = "bevco", "BevCo (generic connector preset)"
        GENERIC = "generic", "Generic HTTP connector"

    class AuthMethod(models.TextChoices):
        ACCESS_TOKEN = "access_token", "Access token (Shopify Admin token / Magento bearer token)"
        CLIENT_CREDENTIALS = "client_credentials", "Client credentials (id + secret, token cached)"
        OAUTH1 = "oauth1", "Magento integration, OAuth 1.0a signed"
        ADMIN_LOGIN = "admin_login", "Magento admin user name + password (token cached)"
        CONNECTOR = "connector", "As described in the connector settings (generic)"

    class SecondFactor(models.TextChoices):
        EMAIL = "email", "Email address on the order"
        POSTCODE = "postcode", "Postcode of the order's shipping or billing address"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="order_sources")
    name = models.CharField(max_length=100, help_text="E.g. “Vinhuset Shopify”.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    active = models.BooleanField(
        default=True, help_text="Only an active source is used; at most one per chatbot."
    )
    routing_key = models.SlugField(
        max_length=50,
        default="order",
        help_text="The routing key of the chatbot's order answer flow. Lookups run only when the "
        "router chose the flow with this key.",
    )
    base_url = models.URLField(
        "base URL",
        help_text="Shopify: https://SHOP.myshopify.com · Magento: https://HOST (without /rest) · "
        "commercetools: https://api.REGION.commercetools.com · generic/BevCo: the API's base URL "
        "(used as {base_url} in the URL template).",
    )
    auth_url = models.URLField(
        "auth URL",
        blank=True,
        help_text="commercetools only: https://auth.REGION.commercetools.com.",
    )
    api_version = models.CharField(
        max_length=20,
        blank=True,
        help_text="Shopify: the pinned API version such as 2025-10 (empty = ORDERS_SHOPIFY_API_"
        "VERSION). Magento: the platform release, for your notes (e.g. 2.4.7).",
    )
    store_code = models.CharField(
        max_length=100,
        blank=True,
        help_text="Magento: store code in /rest/<code>/V1 (empty = default store). "
        "commercetools: store key of a store-scoped API client (empty = project-wide).",
    )
    project_key = models.CharField(
        max_length=100, blank=True, help_text="commercetools: the project key."
    )
    auth_method = models.CharField(
        max_length=20, choices=AuthMethod.choices, default=AuthMethod.ACCESS_TOKEN
    )
    client_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="Client id (Shopify/commercetools), consumer key (Magento OAuth), admin user "
        "name (Magento admin login), or user name for basic auth (generic).",
    )
    client_secret = EncryptedSecretField(
        "client secret",
        blank=True,
        help_text="Client secret, Magento consumer secret, Magento admin password or basic-auth "
        "password. Stored encrypted; never shown again.",
    )
    access_token = EncryptedSecretField(
        "access token",
        blank=True,
        help_text="Shopify Admin API token (shpat_…), Magento bearer/integration access token, "
        "or the generic connector's API key. Stored encrypted; never shown again.",
    )
    token_secret = EncryptedSecretField(
        "access token secret",
        blank=True,
        help_text="Magento OAuth 1.0a only: the integration's access token secret.",
    )
    scope = models.CharField(
        max_length=300,
        blank=True,
        help_text="commercetools: OAuth scope (empty = view_orders:<project key>).",
    )
    second_factor = models.CharField(
        max_length=10,
        choices=SecondFactor.choices,
        default=SecondFactor.EMAIL,
        help_text="What the customer must give besides the order number before any order data "
        "is shown.",
    )
    order_number_prefix = models.CharField(
        max_length=20,
        blank=True,
        help_text="Shopify: the shop's order name prefix (empty = #), so “1001” finds “#1001”. "
        "Magento: zero-pad plain numbers to this many digits if you type a number "
        "(e.g. 9 → 000001001); empty = 9.",
    )
    carrier_urls = models.JSONField(
        default=dict,
        blank=True,
        help_text="Tracking links per carrier where the platform gives only a number, e.g. "
        '{"gls": "https://gls-group.eu/track/{number}"}. Adds to or overrides the built-in list.',
    )
    connector = models.JSONField(
        default=dict,
        blank=True,
        help_text="Generic/BevCo only: request, authentication and response mapping (see "
        "docs/orders.md). Empty for BevCo = the BevCo preset.",
    )
    timeout = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.05), MaxValueValidator(120)],
        help_text="Seconds one request may take (empty = ORDERS_TIMEOUT).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chatbot", "name"]
        constraints = [
            # Invariant: a turn finds at most one active source for its chatbot; also serves the
            # per-turn lookup (chatbot_id, active, routing_key).
            models.UniqueConstraint(
                fields=["chatbot"],
                condition=Q(active=True),
                name="one_active_order_source_per_chatbot",
                violation_error_message="This chatbot already has an active order source.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def is_connector(self) -> bool:
        return self.kind in (self.Kind.GENERIC, self.Kind.BEVCO)

    def shopify_version_warning(self, today: dt.date | None = None) -> str:
        """A warning when the pinned Shopify version is near or past its ~12 months of support."""
        if self.kind not in (self.Kind.SHOPIFY, self.Kind.SHOPIFY_REST):
            return ""
        version = self.api_version or settings.ORDERS_SHOPIFY_API_VERSION
        return version_warning(version, today)

    def clean(self) -> None:
        """The checks every source gets, then the platform's own rules, declared on its provider
        class (`Provider.auth_methods`, `Provider.source_errors`)."""
        errors = self._url_errors()
        provider = PROVIDERS.get(self.kind)
        allowed = set(provider.auth_methods) if provider else set()
        if len(allowed) == 1 and self.auth_method not in allowed:
            # Only one way to authenticate: no need to make staff pick it.
            self.auth_method = next(iter(allowed))
        if self.kind and self.auth_method not in allowed:
            names = ", ".join(str(self.AuthMethod(m).label) for m in sorted(allowed))
            errors["auth_method"] = f"{self.get_kind_display()} supports: {names}."
        for field, message in credentials_needed(self):
            if not getattr(self, field):
                errors.setdefault(field, message)
        if provider:
            errors.update(provider.source_errors(self))
        if not isinstance(self.carrier_urls, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "{number}" in v
            for k, v in (self.carrier_urls or {}).items()
        ):
            errors["carrier_urls"] = (
                'Write carrier links as {"carrier": "https://…{number}…"}; each needs {number}.'
            )
        if errors:
            raise ValidationError(errors)

    def _url_errors(self) -> dict[str, str]:
        """Trailing slashes dropped; no query or fragment; not this machine nor its private
        networks (outbound/guard.py)."""
        errors: dict[str, str] = {}
        if self.base_url:
            self.base_url = self.base_url.rstrip("/")
            parts = urlsplit(self.base_url)
            if parts.query or parts.fragment:
                errors["base_url"] = "Enter the base URL without ?query or #fragment."
        if self.auth_url:
            self.auth_url = self.auth_url.rstrip("/")
        errors.update(url_errors(base_url=self.base_url, auth_url=self.auth_url))
        return errors


# The credentials each auth method needs, as (field, message); the connector's depend on its
# auth type (`connector_credentials`).
CREDENTIALS: dict[str, list[tuple[str, str]]] = {
    "access_token": [("access_token", "Enter the access token.")],
    "client_credentials": [
        ("client_id", "Enter the client id."),
        ("client_secret", "Enter the client secret."),
    ],
    "oauth1": [
        ("client_id", "Enter the integration's consumer key."),
        ("client_secret", "Enter the integration's consumer secret."),
        ("access_token", "Enter the integration's access token."),
        ("token_secret", "Enter the integration's access token secret."),
    ],
    "admin_login": [
        ("client_id", "Enter the admin user name."),
        ("client_secret", "Enter the admin password."),
    ],
}


def credentials_needed(source: OrderSource) -> list[tuple[str, str]]:
    if source.auth_method == OrderSource.AuthMethod.CONNECTOR:
        return connector_credentials(connector_config(source.kind, source.connector))
    return CREDENTIALS.get(source.auth_method, [])

"""Where a chatbot looks up orders: one OrderSource per shop platform connection."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from chatbots.models import Chatbot
from chatbots.secrets import EncryptedSecretField
from outbound.policy import url_errors

API_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")


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
        if version == "unstable":
            return "“unstable” changes without notice: pin a dated version such as 2025-10."
        if not API_VERSION_RE.match(version):
            return ""
        year, month = (int(part) for part in version.split("-"))
        end = dt.date(year + 1, month, 1)
        today = today or dt.date.today()
        if today >= end:
            return (
                f"API version {version} is past its 12 months of support: Shopify now answers "
                "with the oldest supported version instead. Move to a newer version."
            )
        if today >= end - dt.timedelta(days=90):
            return (
                f"API version {version} reaches the end of its support around {end:%Y-%m}: "
                "test a newer version and switch."
            )
        return ""

    def clean(self) -> None:
        from orders.providers.generic import BEVCO_PRESET, connector_errors

        errors: dict[str, str] = {}
        if self.base_url:
            self.base_url = self.base_url.rstrip("/")
            parts = urlsplit(self.base_url)
            if parts.query or parts.fragment:
                errors["base_url"] = "Enter the base URL without ?query or #fragment."
        if self.auth_url:
            self.auth_url = self.auth_url.rstrip("/")
        # Not this machine nor its private networks (outbound/guard.py).
        errors.update(url_errors(base_url=self.base_url, auth_url=self.auth_url))
        kind, method = self.kind, self.auth_method
        methods = {
            self.Kind.SHOPIFY: {self.AuthMethod.ACCESS_TOKEN, self.AuthMethod.CLIENT_CREDENTIALS},
            self.Kind.MAGENTO: {
                self.AuthMethod.ACCESS_TOKEN,
                self.AuthMethod.OAUTH1,
                self.AuthMethod.ADMIN_LOGIN,
            },
            self.Kind.COMMERCETOOLS: {self.AuthMethod.CLIENT_CREDENTIALS},
            self.Kind.GENERIC: {self.AuthMethod.CONNECTOR},
            self.Kind.BEVCO: {self.AuthMethod.CONNECTOR},
        }
        methods[self.Kind.SHOPIFY_REST] = methods[self.Kind.SHOPIFY]
        allowed = methods.get(kind, set())
        if len(allowed) == 1 and method not in allowed:
            # Only one way to authenticate: no need to make staff pick it.
            method = self.auth_method = next(iter(allowed))
        if kind and method not in allowed:
            names = ", ".join(str(self.AuthMethod(m).label) for m in sorted(allowed))
            errors["auth_method"] = f"{self.get_kind_display()} supports: {names}."
        needs: list[tuple[str, str]] = []
        if method == self.AuthMethod.ACCESS_TOKEN:
            needs.append(("access_token", "Enter the access token."))
        elif method == self.AuthMethod.CLIENT_CREDENTIALS:
            needs += [
                ("client_id", "Enter the client id."),
                ("client_secret", "Enter the client secret."),
            ]
        elif method == self.AuthMethod.OAUTH1:
            needs += [
                ("client_id", "Enter the integration's consumer key."),
                ("client_secret", "Enter the integration's consumer secret."),
                ("access_token", "Enter the integration's access token."),
                ("token_secret", "Enter the integration's access token secret."),
            ]
        elif method == self.AuthMethod.ADMIN_LOGIN:
            needs += [
                ("client_id", "Enter the admin user name."),
                ("client_secret", "Enter the admin password."),
            ]
        elif method == self.AuthMethod.CONNECTOR:
            config = self.connector or (BEVCO_PRESET if kind == self.Kind.BEVCO else {})
            auth = config.get("auth") if isinstance(config, dict) else None
            auth_type = auth.get("type", "none") if isinstance(auth, dict) else "none"
            if auth_type in ("header", "bearer", "query"):
                needs.append(("access_token", "Enter the API key the connector sends."))
            elif auth_type == "basic":
                needs += [
                    ("client_id", "Enter the user name for basic auth."),
                    ("client_secret", "Enter the password for basic auth."),
                ]
        for field, message in needs:
            if not getattr(self, field):
                errors.setdefault(field, message)
        shopify = kind in (self.Kind.SHOPIFY, self.Kind.SHOPIFY_REST)
        if shopify and self.api_version and not API_VERSION_RE.match(self.api_version):
            errors["api_version"] = "Shopify versions look like 2025-10 (or “unstable”)."
        if kind == self.Kind.COMMERCETOOLS:
            if not self.project_key:
                errors["project_key"] = "Enter the commercetools project key."
            if not self.auth_url:
                errors["auth_url"] = (
                    "Enter the auth URL, e.g. https://auth.europe-west1.gcp.commercetools.com."
                )
        pad = self.order_number_prefix
        if kind == self.Kind.MAGENTO and pad and (not pad.isdigit() or not 0 < int(pad) <= 32):
            errors["order_number_prefix"] = (
                "For Magento enter the number of digits of your order numbers (e.g. 9)."
            )
        if not isinstance(self.carrier_urls, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "{number}" in v
            for k, v in (self.carrier_urls or {}).items()
        ):
            errors["carrier_urls"] = (
                'Write carrier links as {"carrier": "https://…{number}…"}; each needs {number}.'
            )
        if self.is_connector:
            problems = connector_errors(
                self.connector or (BEVCO_PRESET if kind == self.Kind.BEVCO else {}),
                second_factor=self.second_factor,
            )
            if problems:
                errors["connector"] = " ".join(problems)
        elif self.connector and kind and not self.is_connector:
            errors["connector"] = "Connector settings are only used by generic and BevCo sources."
        if errors:
            raise ValidationError(errors)

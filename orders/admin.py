"""Admin for order sources: write-only credentials, Test connection, and the call counters."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db import models
from django.utils.html import format_html

from accounts.scoped_admin import ShopScopedAdmin
from chatbots.connection_admin import ConnectionTestMixin
from orders import selectors, services
from orders.models import OrderSource
from orders.providers.generic import BEVCO_PRESET

SECRETS = ("client_secret", "access_token", "token_secret")


def _https_by_default(db_field: models.Field, **kwargs):
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class OrderSourceForm(forms.ModelForm):
    class Meta:
        model = OrderSource
        fields = (
            "chatbot",
            "name",
            "kind",
            "active",
            "routing_key",
            "second_factor",
            "base_url",
            "auth_url",
            "api_version",
            "store_code",
            "project_key",
            "scope",
            "auth_method",
            "client_id",
            "client_secret",
            "access_token",
            "token_secret",
            "order_number_prefix",
            "carrier_urls",
            "connector",
            "timeout",
        )
        formfield_callback = _https_by_default
        help_texts = {
            "connector": "Generic/BevCo only. Example (the BevCo preset, used when this is empty "
            "for BevCo): " + json.dumps(BEVCO_PRESET),
        }


@admin.register(OrderSource)
class OrderSourceAdmin(ShopScopedAdmin, ConnectionTestMixin, admin.ModelAdmin):
    form = OrderSourceForm
    list_display = ("name", "chatbot", "kind", "active", "routing_key", "credentials", "counters")
    list_filter = ("kind", "active")
    search_fields = ("name", "chatbot__public_id", "base_url")
    list_select_related = ("chatbot",)
    readonly_fields = ("counters_detail", "version_status")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_fieldsets(self, request, obj=None):
        credentials = ("auth_method", "client_id", *SECRETS)
        return (
            (None, {"fields": ("chatbot", "name", "kind", "active", "routing_key")}),
            (
                "Where",
                {
                    "fields": (
                        "base_url",
                        "auth_url",
                        "api_version",
                        "store_code",
                        "project_key",
                        "scope",
                        "timeout",
                        "version_status",
                    )
                },
            ),
            ("Credentials (stored encrypted, never shown again)", {"fields": credentials}),
            (
                "Customers and orders",
                {"fields": ("second_factor", "order_number_prefix", "carrier_urls")},
            ),
            ("Generic connector / BevCo", {"fields": ("connector",), "classes": ("collapse",)}),
            ("Calls", {"fields": ("counters_detail",)}),
        )

    def connection_test(self, obj: OrderSource) -> tuple[bool, str]:
        return services.order_source_connection_test(source=obj)

    @admin.display(description="credentials", boolean=True)
    def credentials(self, obj: OrderSource) -> bool:
        return bool(obj.access_token or obj.client_secret or obj.auth_method == "connector")

    @admin.display(description="calls / errors")
    def counters(self, obj: OrderSource) -> str:
        stats = selectors.order_source_stats(source_id=obj.pk)
        return f"{stats['calls']} / {stats['errors']}"

    @admin.display(description="Shopify API version")
    def version_status(self, obj: OrderSource | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        return obj.shopify_version_warning() or "OK"

    @admin.display(description="counters")
    def counters_detail(self, obj: OrderSource | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        stats = selectors.order_source_stats(source_id=obj.pk)
        return format_html(
            "{} requests ({} failed, {} retried, {} throttled, average {} ms) · {} lookups: "
            "{} found, {} not found, {} email/postcode mismatch, {} failed · last error: {}",
            stats["calls"],
            stats["errors"],
            stats["retries"],
            stats["throttled"],
            stats["avg_ms"] if stats["avg_ms"] is not None else "–",
            stats["lookups"],
            stats["found"],
            stats["not_found"],
            stats["mismatch"],
            stats["failed"],
            stats.get("last_error") or "none",
        )

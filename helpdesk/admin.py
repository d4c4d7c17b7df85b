"""Admin for helpdesk connections (write-only key, Test connection), handoffs and ratings."""

from __future__ import annotations

import contextlib

from django import forms
from django.contrib import admin, messages
from django.db import IntegrityError

from accounts.scoped_admin import ShopScopedAdmin
from chatbots.connection_admin import ConnectionTestMixin
from helpdesk import services
from helpdesk.models import ConversationRating, Handoff, HelpdeskConnection


class HelpdeskConnectionForm(forms.ModelForm):
    class Meta:
        model = HelpdeskConnection
        fields = (
            "chatbot",
            "kind",
            "active",
            "domain",
            "api_key",
            "agent_email",
            "webhook_secret",
            "priority",
            "tags",
        )
        labels = {"api_key": "API key / token"}


@admin.register(HelpdeskConnection)
class HelpdeskConnectionAdmin(ShopScopedAdmin, ConnectionTestMixin, admin.ModelAdmin):
    form = HelpdeskConnectionForm
    list_display = ("chatbot", "kind", "domain", "active", "key_stored")
    list_filter = ("kind", "active")
    search_fields = ("chatbot__public_id", "domain")
    list_select_related = ("chatbot",)

    def get_fieldsets(self, request, obj=None):
        return (
            (None, {"fields": ("chatbot", "kind", "active", "domain")}),
            (
                "Credentials (stored encrypted, never shown again)",
                {"fields": ("api_key", "agent_email", "webhook_secret")},
            ),
            ("Tickets", {"fields": ("priority", "tags")}),
        )

    def connection_test(self, obj: HelpdeskConnection) -> tuple[bool, str]:
        return services.helpdesk_connection_test(connection=obj)

    @admin.display(description="API key", boolean=True)
    def key_stored(self, obj: HelpdeskConnection) -> bool:
        return bool(obj.api_key)


@admin.register(Handoff)
class HandoffAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("created_at", "chatbot", "kind", "mode", "state", "ticket_id", "attempts")
    list_filter = ("state", "kind", "mode")
    search_fields = ("conversation__id", "ticket_id", "requester_email")
    list_select_related = ("conversation__chatbot",)
    date_hierarchy = "created_at"
    actions = ["retry_ticket"]
    readonly_fields = [f.name for f in Handoff._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="chatbot")
    def chatbot(self, obj: Handoff) -> str:
        return obj.conversation.chatbot.public_id

    @admin.action(description="Try to create the ticket again", permissions=["change"])
    def retry_ticket(self, request, queryset):
        retried = 0
        for handoff in queryset:
            # IntegrityError: another request of that kind is already pending.
            with contextlib.suppress(IntegrityError):
                retried += services.handoff_retry(handoff=handoff)
        self.message_user(
            request,
            f"{retried} failed handoff(s) queued again; others were not failed.",
            messages.SUCCESS if retried else messages.WARNING,
        )


@admin.register(ConversationRating)
class ConversationRatingAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("created_at", "chatbot", "score", "comment")
    list_filter = ("score",)
    list_select_related = ("conversation__chatbot",)
    readonly_fields = ("conversation", "score", "comment", "created_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="chatbot")
    def chatbot(self, obj: ConversationRating) -> str:
        return obj.conversation.chatbot.public_id

"""Admin for the live inbox's configuration: handoff rules per chatbot, canned responses per shop.
The inbox page itself is /admin/inbox/ (inbox/views.py)."""

from __future__ import annotations

from django.contrib import admin

from accounts.scoped_admin import ShopScopedAdmin
from inbox.models import CannedResponse, HandoffRule


@admin.register(HandoffRule)
class HandoffRuleAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("chatbot", "failed_turns", "usual_wait_minutes", "updated_at")
    list_select_related = ("chatbot",)
    fields = ("chatbot", "keywords", "failed_turns", "usual_wait_minutes")


@admin.register(CannedResponse)
class CannedResponseAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("shortcut", "shop", "text")
    search_fields = ("shortcut", "text")
    fields = ("shop", "shortcut", "text")

"""Admin for a bot's tools: tick the tools its model may call and set the loop's bounds."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from accounts.scoped_admin import ShopScopedAdmin
from tools.models import ChatbotTools
from tools.registry import tool_choices


class ChatbotToolsForm(forms.ModelForm):
    tools = forms.TypedMultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The model is offered these tools and no others; a call to any other tool is "
        "refused without running.",
    )

    class Meta:
        model = ChatbotTools
        fields = ("chatbot", "tools", "max_steps", "max_seconds", "call_timeout")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read when the form is built: tools register when their app loads.
        self.fields["tools"].choices = tool_choices()


@admin.register(ChatbotTools)
class ChatbotToolsAdmin(ShopScopedAdmin, admin.ModelAdmin):
    form = ChatbotToolsForm
    list_display = ("chatbot", "tool_list", "max_steps", "max_seconds", "call_timeout")
    search_fields = ("chatbot__public_id", "chatbot__name")
    list_select_related = ("chatbot",)

    @admin.display(description="Tools")
    def tool_list(self, obj: ChatbotTools) -> str:
        return ", ".join(obj.tools) or "—"

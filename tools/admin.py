"""Admin for a bot's tools (tick the tools its model may call, set the loop's bounds) and for the
shop's MCP servers (saved with their tool list; Test lists the tools again)."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts import access
from accounts.models import Shop
from accounts.scoped_admin import ShopScopedAdmin
from chatbots.admin_urls import object_admin_paths
from outbound.guard import unreachable, url_refusal
from tools import mcp
from tools.models import ChatbotTools, HttpTool, McpServer
from tools.openapi import http_tools_import
from tools.registry import ToolError, tool_choices
from tools.selectors import http_tool_choices, mcp_tool_choices

logger = logging.getLogger(__name__)


class ChatbotToolsForm(forms.ModelForm):
    tools = forms.TypedMultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The model is offered these tools and no others; a call to any other tool is "
        "refused without running. MCP tools appear once their server is saved.",
    )

    class Meta:
        model = ChatbotTools
        fields = ("chatbot", "tools", "max_steps", "max_seconds", "call_timeout")

    shop_ids: list[int] | None = None  # set by the admin: the signed-in user's shops

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read when the form is built: tools register when their app loads, MCP tools are the
        # cached listings of the user's shops' servers (ChatbotTools.clean checks the bot's).
        self.fields["tools"].choices = (
            tool_choices()
            + mcp_tool_choices(shop_ids=self.shop_ids)
            + http_tool_choices(shop_ids=self.shop_ids)
        )


@admin.register(ChatbotTools)
class ChatbotToolsAdmin(ShopScopedAdmin, admin.ModelAdmin):
    form = ChatbotToolsForm
    list_display = ("chatbot", "tool_list", "max_steps", "max_seconds", "call_timeout")
    search_fields = ("chatbot__public_id", "chatbot__name")
    list_select_related = ("chatbot",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"shop_ids": access.shop_ids_for(request.user)})

    @admin.display(description="Tools")
    def tool_list(self, obj: ChatbotTools) -> str:
        return ", ".join(obj.tools) or "—"


class TryToolForm(forms.Form):
    tool = forms.ChoiceField()
    arguments = forms.JSONField(
        initial=dict,
        required=False,
        help_text='The arguments as a JSON object, e.g. {"sku": "A1"}.',
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
    )

    def __init__(self, *args, tools: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tool"].choices = [(name, name) for name in tools]

    def clean_arguments(self):
        value = self.cleaned_data["arguments"]
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object.")
        return value


class TryToolMixin:
    """A "Try a tool" page on the change form: run one tool with sample arguments and show
    what the model would read, or the error it would get (change permission: it acts)."""

    change_form_template = "admin/tools/tool_change_form.html"

    def get_urls(self):
        pages = [("try/", self.try_view, "try")]
        return [*object_admin_paths(self, pages), *super().get_urls()]

    def tool_names(self, obj) -> list[str]:
        raise NotImplementedError

    async def tool_run(self, obj, tool: str, arguments: dict) -> str:
        raise NotImplementedError

    def try_view(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        form = TryToolForm(request.POST or None, tools=self.tool_names(obj))
        outcome = result = ""
        if request.method == "POST" and form.is_valid():
            try:
                result = async_to_sync(self._bounded)(
                    obj, form.cleaned_data["tool"], form.cleaned_data["arguments"]
                )
                outcome = "The tool answered"
            except ToolError as err:
                outcome, result = "The tool failed", err.message
            except TimeoutError:
                outcome, result = "The tool failed", "No answer in time."
            except Exception:
                logger.warning("trying a tool of %s failed", obj.pk, exc_info=True)
                outcome, result = "The tool failed", "It could not be run."
            cap = settings.TOOLS_RESULT_MAX_CHARS
            if len(result) > cap:
                result = result[:cap] + f"\n[cut: the result had {len(result)} characters]"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": obj,
            "title": f"Try a tool of {obj}",
            "form": form,
            "outcome": outcome,
            "result": result,
            "result_max": settings.TOOLS_RESULT_MAX_CHARS,
        }
        return TemplateResponse(request, "admin/tools/try_tool.html", context)

    async def _bounded(self, obj, tool: str, arguments: dict) -> str:
        async with asyncio.timeout(obj.timeout + 5):
            return await self.tool_run(obj, tool, arguments)


def mcp_endpoint_of(server: McpServer) -> mcp.McpEndpoint:
    headers = mcp.parse_headers(server.headers_text())
    return mcp.McpEndpoint(
        url=server.url, transport=server.transport, headers=headers, timeout=server.timeout
    )


def mcp_server_refresh(*, server: McpServer) -> tuple[bool, str]:
    """List the server's tools now and cache them; (ok, a sentence for the admin)."""
    if refusal := url_refusal(server.url):
        return False, refusal
    try:
        tools = async_to_sync(mcp.mcp_tools_list)(endpoint=mcp_endpoint_of(server))
    except Exception:
        logger.warning("MCP server %s: listing its tools failed", server.pk, exc_info=True)
        return False, unreachable(server.url) + " (Is the transport right?)"
    server.tools_cache = tools
    server.tools_listed_at = timezone.now()
    server.save(update_fields=["tools_cache", "tools_listed_at"])
    names = ", ".join(t["name"] for t in tools) or "none"
    return True, f"{server.name}: {len(tools)} tool(s): {names}."


@admin.register(McpServer)
class McpServerAdmin(TryToolMixin, ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "shop", "url", "transport", "active", "tool_count", "tools_listed_at")
    list_filter = ("transport", "active")
    search_fields = ("name", "url")
    readonly_fields = ("tool_list", "tools_listed_at")
    fields = (
        "name",
        "url",
        "transport",
        "auth_headers",
        "timeout",
        "active",
        "tool_list",
        "tools_listed_at",
    )
    actions = ("test_servers",)

    def tool_names(self, obj: McpServer) -> list[str]:
        return [t["name"] for t in obj.tools_cache or []]

    async def tool_run(self, obj: McpServer, tool: str, arguments: dict) -> str:
        return await mcp.mcp_tool_call(
            endpoint=mcp_endpoint_of(obj), name=tool, arguments=arguments
        )

    @admin.display(description="Tools")
    def tool_count(self, obj: McpServer) -> int:
        return len(obj.tools_cache or [])

    @admin.display(description="Tools (as last listed)")
    def tool_list(self, obj: McpServer) -> str:
        return ", ".join(t["name"] for t in obj.tools_cache or []) or "—"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        ok, text = mcp_server_refresh(server=obj)
        self.message_user(request, text, messages.SUCCESS if ok else messages.WARNING)

    @admin.action(
        description="Test: list the tools of the selected servers", permissions=["change"]
    )
    def test_servers(self, request, queryset):
        for server in queryset:
            ok, text = mcp_server_refresh(server=server)
            self.message_user(request, text, messages.SUCCESS if ok else messages.ERROR)


class HttpToolForm(forms.ModelForm):
    class Meta:
        model = HttpTool
        fields = (
            "name",
            "description",
            "method",
            "url",
            "parameters",
            "personal_arguments",
            "auth_headers",
            "timeout",
            "active",
        )
        widgets = {"url": forms.URLInput(attrs={"size": 80})}


class OpenApiImportForm(forms.Form):
    shop = forms.ModelChoiceField(queryset=Shop.objects.none())
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="The API's base URL, when the document's servers do not name one.",
    )
    document = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100}),
        max_length=2_000_000,
        help_text="The OpenAPI 3 document, JSON or YAML.",
    )

    def __init__(self, *args, shops, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["shop"].queryset = shops


@admin.register(HttpTool)
class HttpToolAdmin(TryToolMixin, ShopScopedAdmin, admin.ModelAdmin):
    form = HttpToolForm
    list_display = ("name", "shop", "method", "url", "active")
    list_filter = ("method", "active")
    search_fields = ("name", "url")

    def tool_names(self, obj: HttpTool) -> list[str]:
        return [obj.name]

    async def tool_run(self, obj: HttpTool, tool: str, arguments: dict) -> str:
        from tools.http import HttpCall, http_tool_call

        call = HttpCall(
            method=obj.method,
            url=obj.url,
            headers=mcp.parse_headers(obj.headers_text()),
            timeout=obj.timeout,
        )
        return await http_tool_call(call=call, arguments=arguments)

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_openapi_view)
        return [
            path("import-openapi/", view, name="tools_httptool_import_openapi"),
            *super().get_urls(),
        ]

    def import_openapi_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        ids = access.shop_ids_for(request.user)
        shops = Shop.objects.order_by("name")
        if ids is not None:
            allowed = [i for i in ids if access.may(request.user, "add", HttpTool, i)]
            shops = shops.filter(pk__in=allowed)
        form = OpenApiImportForm(request.POST or None, shops=shops)
        if request.method == "POST" and form.is_valid():
            try:
                report = http_tools_import(
                    shop_id=form.cleaned_data["shop"].pk,
                    text=form.cleaned_data["document"],
                    base_url=form.cleaned_data["base_url"],
                )
            except ValueError as exc:
                form.add_error("document", str(exc))
            else:
                created = ", ".join(report.created) or "none"
                self.message_user(request, f"Created {len(report.created)} tool(s): {created}.")
                for line in report.skipped[:50]:
                    self.message_user(request, f"Skipped {line}.", messages.WARNING)
                return redirect("admin:tools_httptool_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import HTTP tools from OpenAPI",
            "form": form,
        }
        return TemplateResponse(request, "admin/tools/httptool/import_openapi.html", context)

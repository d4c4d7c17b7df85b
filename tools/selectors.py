"""Read side of the tools app: what one turn's tool loop may do."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from chatbots.config_types import ToolsBinding
from chatbots.secrets import SecretDecryptionError
from tools.models import ChatbotTools
from tools.registry import Tool, tool_get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Toolset:
    tools: dict[str, Tool]  # the bot's allow-list, registered tools only
    max_steps: int
    max_seconds: float
    call_timeout: float
    result_max_chars: int


def tools_binding_get(*, chatbot_id: int) -> ToolsBinding | None:
    """The bot's tool allow-list and bounds as a published version holds them (chatbots.versions
    reads them through the reader tools.apps registers)."""
    row = ChatbotTools.objects.filter(chatbot_id=chatbot_id).first()
    if row is None:
        return None
    return {
        "tools": list(row.tools),
        "max_steps": row.max_steps,
        "max_seconds": row.max_seconds,
        "call_timeout": row.call_timeout,
    }


def toolset_for_turn(*, chatbot_id: int, binding: ToolsBinding | None = None) -> Toolset | None:
    """The bot's tools and loop bounds, or None when it has none (the turn runs as before).
    One indexed read (the one-to-one's unique chatbot_id), and one of the shop's MCP servers
    when an MCP tool is listed, per answer of an OpenAI-compatible flow; on a database thread.

    `binding` (a published version's tools, chatbots.versions) replaces the bot's row."""
    row: ChatbotTools | None
    if binding is not None:
        if not binding.get("tools"):
            return None
        row = ChatbotTools(chatbot_id=chatbot_id, **binding)
    else:
        row = ChatbotTools.objects.select_related("chatbot").filter(chatbot_id=chatbot_id).first()
        if row is None:
            return None
    tools = {name: tool for name in row.tools if (tool := tool_get(name)) is not None}
    wanted = {name for name in row.tools if name.startswith("mcp__")}
    if wanted:
        tools.update(_mcp_tools(shop_id=row.chatbot.shop_id, wanted=wanted))
    wanted = {name for name in row.tools if name.startswith("http__")}
    if wanted:
        tools.update(_http_tools(shop_id=row.chatbot.shop_id, wanted=wanted))
    if not tools:
        return None
    return Toolset(
        tools=tools,
        max_steps=row.max_steps or settings.TOOLS_MAX_STEPS,
        max_seconds=float(row.max_seconds or settings.TOOLS_TURN_SECONDS),
        call_timeout=float(row.call_timeout or settings.TOOLS_CALL_TIMEOUT),
        result_max_chars=settings.TOOLS_RESULT_MAX_CHARS,
    )


def _mcp_tools(*, shop_id: int, wanted: set[str]) -> dict[str, Tool]:
    """Tools of the shop's active MCP servers on the allow-list, from their cached listings."""
    from tools.mcp import McpEndpoint, allow_list_name, parse_headers
    from tools.models import McpServer

    tools: dict[str, Tool] = {}
    for server in McpServer.objects.filter(shop_id=shop_id, active=True):
        listed = {
            name: tool
            for tool in server.tools_cache or []
            if (name := allow_list_name(server.name, tool.get("name", ""))) in wanted
        }
        if not listed:
            continue
        try:
            headers = parse_headers(server.headers_text())
        except (SecretDecryptionError, ValueError):
            logger.warning("MCP server %s: auth headers unreadable; its tools are off", server.pk)
            continue
        endpoint = McpEndpoint(
            url=server.url, transport=server.transport, headers=headers, timeout=server.timeout
        )
        for name, tool in listed.items():
            tools[name] = Tool(
                name=name,
                title=f"{server.name}: {tool['name']}",
                description=tool.get("description") or tool["name"],
                parameters=tool.get("input_schema") or {"type": "object", "properties": {}},
                run=_mcp_run(endpoint, tool["name"]),
                label={"en": f"Asking {server.name}…", "da": f"Spørger {server.name}…"},
                # Nothing says which arguments of another party's tool are personal: none is
                # shown in the customer's events or the records.
                redact=frozenset({"*"}),
            )
    return tools


def _mcp_run(endpoint, tool_name: str):
    from tools.mcp import mcp_tool_call

    async def run(ctx, arguments):
        return await mcp_tool_call(endpoint=endpoint, name=tool_name, arguments=arguments)

    return run


def mcp_tool_names(*, shop_id: int | None) -> list[str]:
    """Allow-list names of the cached tools of a shop's active MCP servers."""
    from tools.mcp import allow_list_name
    from tools.models import McpServer

    if shop_id is None:
        return []
    names = []
    for server in McpServer.objects.filter(shop_id=shop_id, active=True).order_by("name"):
        for tool in server.tools_cache or []:
            if name := allow_list_name(server.name, tool.get("name", "")):
                names.append(name)
    return names


def mcp_tool_choices(*, shop_ids: list[int] | None) -> list[tuple[str, str]]:
    """(allow-list name, label) of the cached MCP tools of these shops (None: all shops)."""
    from tools.mcp import allow_list_name
    from tools.models import McpServer

    servers = McpServer.objects.filter(active=True).order_by("name")
    if shop_ids is not None:
        servers = servers.filter(shop_id__in=shop_ids)
    choices = []
    for server in servers:
        for tool in server.tools_cache or []:
            if name := allow_list_name(server.name, tool.get("name", "")):
                choices.append((name, f"{server.name}: {tool['name']} (MCP)"))
    return choices


def http_tool_name(name: str) -> str:
    return f"http__{name.replace('-', '_')}"[:64]


def _http_rows(shop_ids: list[int] | None):
    from tools.models import HttpTool

    rows = HttpTool.objects.filter(active=True).order_by("name")
    return rows if shop_ids is None else rows.filter(shop_id__in=shop_ids)


def http_tool_names(*, shop_id: int | None) -> list[str]:
    if shop_id is None:
        return []
    return [http_tool_name(row.name) for row in _http_rows([shop_id])]


def http_tool_choices(*, shop_ids: list[int] | None) -> list[tuple[str, str]]:
    return [(http_tool_name(row.name), f"{row.name} (HTTP)") for row in _http_rows(shop_ids)]


def _http_tools(*, shop_id: int, wanted: set[str]) -> dict[str, Tool]:
    from tools.http import HttpCall, http_tool_call
    from tools.mcp import parse_headers

    tools: dict[str, Tool] = {}
    for row in _http_rows([shop_id]):
        name = http_tool_name(row.name)
        if name not in wanted:
            continue
        try:
            headers = parse_headers(row.headers_text())
        except (SecretDecryptionError, ValueError):
            logger.warning("HTTP tool %s: auth headers unreadable; it is off", row.pk)
            continue
        call = HttpCall(method=row.method, url=row.url, headers=headers, timeout=row.timeout)

        def run(ctx, arguments, _call=call):
            return http_tool_call(call=_call, arguments=arguments)

        personal = {p.strip() for p in row.personal_arguments.split(",") if p.strip()}
        tools[name] = Tool(
            name=name,
            title=f"{row.name} (HTTP)",
            description=row.description,
            parameters=row.parameters,
            run=run,
            redact=frozenset(personal),
            label={"en": "Checking…", "da": "Tjekker…"},
        )
    return tools

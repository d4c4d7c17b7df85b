"""MCP servers as tool sources, through the official `mcp` SDK: list a server's tools, call one.

One connection per listing or call (streamable HTTP or HTTP+SSE), bounded by the server's
timeout, with the address guard at request time (outbound/guard.py: the SDK's httpx2 client
takes the same trace hook) and the stored auth headers. A server that fails, times out or goes
away fails the one listing or call that used it, with a sentence for the model or the admin.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from outbound.policy import async_hooks
from tools.registry import ToolError

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MODEL_NAME_MAX = 64  # OpenAI's limit for a function name
MAX_TOOLS = 100


@dataclass(frozen=True)
class McpEndpoint:
    """What a connection needs; `headers` hold secrets, so this never goes to a log."""

    url: str
    transport: str  # "streamable_http" | "sse"
    headers: dict[str, str]
    timeout: float

    def __repr__(self) -> str:
        return f"McpEndpoint(url={self.url!r}, transport={self.transport!r})"


def header_problems(text: str) -> str | None:
    try:
        parse_headers(text)
    except ValueError as exc:
        return str(exc)
    return None


def parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not HEADER_NAME.match(name) or not value or "\r" in value or "\0" in value:
            raise ValueError(f"Line {number} is not a header of the form “Name: value”.")
        headers[name] = value
    return headers


def allow_list_name(server_name: str, tool_name: str) -> str | None:
    """The tool's name on allow-lists and for the model: mcp__<server>__<tool>; None when the
    tool's name cannot be one (characters or length a model does not accept)."""
    name = f"mcp__{server_name.replace('-', '_')}__{tool_name}"
    if not TOOL_NAME.match(tool_name) or len(name) > MODEL_NAME_MAX:
        return None
    return name


def _http_client(endpoint: McpEndpoint, **kw: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers={**endpoint.headers, **(kw.get("headers") or {})},
        timeout=httpx2.Timeout(endpoint.timeout),
        event_hooks=async_hooks(),
        auth=kw.get("auth"),
        trust_env=False,
    )


@contextlib.asynccontextmanager
async def mcp_connect(endpoint: McpEndpoint) -> AsyncIterator[Client]:
    if endpoint.transport == "sse":

        def factory(headers=None, timeout=None, auth=None):
            return _http_client(endpoint, headers=headers, auth=auth)

        transport = sse_client(
            endpoint.url,
            timeout=endpoint.timeout,
            sse_read_timeout=endpoint.timeout,
            httpx_client_factory=factory,
        )
        async with Client(transport, read_timeout_seconds=endpoint.timeout, cache=None) as client:
            yield client
        return
    async with _http_client(endpoint) as http:
        transport = streamable_http_client(endpoint.url, http_client=http)
        async with Client(transport, read_timeout_seconds=endpoint.timeout, cache=None) as client:
            yield client


async def mcp_tools_list(*, endpoint: McpEndpoint) -> list[dict[str, Any]]:
    """The server's tools: [{name, description, input_schema}] (at most MAX_TOOLS)."""
    tools: list[dict[str, Any]] = []
    async with mcp_connect(endpoint) as client:
        cursor = None
        while len(tools) < MAX_TOOLS:
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
                tools.append(
                    {
                        "name": str(tool.name)[:128],
                        "description": str(tool.description or "")[:1000],
                        "input_schema": schema or {"type": "object", "properties": {}},
                    }
                )
            cursor = page.next_cursor
            if not cursor:
                break
    return tools[:MAX_TOOLS]


def _content_text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


async def mcp_tool_call(*, endpoint: McpEndpoint, name: str, arguments: dict[str, Any]) -> str:
    """Call one tool; its text result, or ToolError with what the model should know."""
    try:
        async with mcp_connect(endpoint) as client:
            result = await client.call_tool(name, arguments)
    except TimeoutError:
        raise
    except Exception as exc:
        raise ToolError(
            "The tool's server could not be reached or stopped answering; try again later."
        ) from exc
    text = _content_text(result)
    if result.is_error:
        raise ToolError(f"The tool reported an error: {text[:500]}")
    return text

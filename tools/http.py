"""HTTP tools: a shop's own endpoint called with the model's arguments (tools.models.HttpTool).

The URL is checked by the outbound guard when saved and at connection time; redirects are not
followed; the answer is read up to MAX_BODY bytes; a 4xx/5xx, a timeout or a refused connection
becomes the call's error for the model, with nothing of the auth headers in it.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from outbound.policy import async_hooks, url_errors
from tools.mcp import parse_headers
from tools.registry import ToolError

MAX_BODY = 1_000_000
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class HttpCall:
    method: str
    url: str  # with {placeholders}
    headers: dict[str, str]  # secrets: never logged
    timeout: float

    def __repr__(self) -> str:
        return f"HttpCall(method={self.method!r}, url={self.url!r})"


def http_tool_problems(*, url: str, parameters: Any, headers_text: str) -> dict[str, str]:
    """{field: sentence} for what would make the tool unusable, for the model's clean()."""
    errors: dict[str, str] = {}
    names = PLACEHOLDER.findall(url)
    try:
        list(string.Formatter().parse(url))
    except ValueError:
        errors["url"] = "Braces must enclose an argument's name, e.g. {sku}."
    sample = PLACEHOLDER.sub("x", url)
    parts = urlsplit(sample)
    if "url" not in errors and (parts.scheme not in ("http", "https") or not parts.hostname):
        errors["url"] = "Enter a full http(s):// address."
    if "url" not in errors and PLACEHOLDER.search(urlsplit(url).netloc or ""):
        errors["url"] = "Arguments may go in the path, not the host."
    if "url" not in errors:
        errors.update(url_errors(url=sample))
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        errors["parameters"] = 'The arguments must be a JSON Schema object: {"type": "object", …}.'
    else:
        properties = parameters.get("properties") or {}
        missing = [n for n in names if n not in properties]
        if missing:
            errors["parameters"] = f"The URL uses arguments the schema lacks: {', '.join(missing)}."
    try:
        parse_headers(headers_text)
    except ValueError as exc:
        errors["auth_headers"] = str(exc)
    return errors


def _url_with(url: str, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL with its placeholders filled (each value escaped as one path segment) and the
    arguments left over."""
    rest = dict(arguments)

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in rest or rest[name] in (None, ""):
            raise ToolError(f"The argument {name!r} is required.")
        return quote(str(rest.pop(name)), safe="")

    return PLACEHOLDER.sub(fill, url), rest


async def http_tool_call(*, call: HttpCall, arguments: dict[str, Any]) -> str:
    url, rest = _url_with(call.url, arguments)
    kwargs: dict[str, Any] = {}
    if call.method == "GET":
        kwargs["params"] = {
            k: (json.dumps(v) if isinstance(v, dict | list) else str(v))
            for k, v in rest.items()
            if v is not None
        }
    else:
        kwargs["json"] = rest
    try:
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(call.timeout),
                follow_redirects=False,
                trust_env=False,
                event_hooks=async_hooks(),
            ) as client,
            client.stream(
                call.method,
                url,
                headers={"Accept": "application/json, text/plain", **call.headers},
                **kwargs,
            ) as response,
        ):
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    break
    except httpx.TimeoutException as exc:
        raise ToolError("The service did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise ToolError("The service could not be reached.") from exc
    text = bytes(body[:MAX_BODY]).decode("utf-8", "replace")
    for value in call.headers.values():
        # A service that echoes the request must not hand the model our credentials.
        if len(value) >= 4:
            text = text.replace(value, "***")
    if response.status_code >= 300:
        raise ToolError(f"The service answered HTTP {response.status_code}: {text[:300]}")
    return text

"""HTTP tools from an OpenAPI 3 document: one tool per GET or POST operation.

Path and query parameters become the tool's arguments (path ones go into the URL's {name}
placeholders, query ones into the query string); a POST's JSON request body adds its object
properties. Local $refs are resolved. What cannot be a tool (other methods, header or cookie
parameters, a name taken) is reported, not guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from tools.models import HttpTool

METHODS = ("get", "post")
REF_DEPTH = 20
NAME_CHARS = re.compile(r"[^a-z0-9_]+")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "GET /x: why"


def openapi_parse(text: str) -> dict[str, Any]:
    """The document as a dict (JSON or YAML), or ValueError with a sentence."""
    try:
        document = json.loads(text)
    except RecursionError as exc:
        raise ValueError("This document is nested too deeply to read.") from exc
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except RecursionError as exc:
            raise ValueError("This document is nested too deeply to read.") from exc
        except yaml.YAMLError as exc:
            raise ValueError("This is neither JSON nor YAML.") from exc
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise ValueError("This is not an OpenAPI document: it has no “paths”.")
    return document


def _resolve(document: dict, node: Any, depth: int = 0) -> Any:
    if depth > REF_DEPTH:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                return {}
            target: Any = document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            return _resolve(document, target or {}, depth + 1)
        return {k: _resolve(document, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(document, v, depth + 1) for v in node]
    return node


def _name(operation: dict, method: str, path: str) -> str:
    raw = operation.get("operationId") or f"{method}_{path}"
    return NAME_CHARS.sub("_", str(raw).lower()).strip("_")[:40] or method


def _operation_tool(
    document: dict, method: str, path: str, operation: dict, shared: list
) -> tuple[dict[str, Any] | None, str]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in [*shared, *(operation.get("parameters") or [])]:
        param = _resolve(document, param)
        if not isinstance(param, dict):
            continue
        where, name = param.get("in"), param.get("name")
        if where in ("header", "cookie"):
            return None, f"its {where} parameter {name!r} cannot come from the model"
        if where not in ("path", "query") or not isinstance(name, str):
            continue
        schema = dict(param.get("schema") or {"type": "string"})
        if param.get("description"):
            schema.setdefault("description", str(param["description"])[:300])
        properties[name] = schema
        if param.get("required") or where == "path":
            required.append(name)
    body = _resolve(document, operation.get("requestBody") or {})
    if body:
        if method != "post":
            return None, "a request body on a GET is not supported"
        body_schema = ((body.get("content") or {}).get("application/json") or {}).get("schema")
        if not isinstance(body_schema, dict) or body_schema.get("type", "object") != "object":
            return None, "its request body is not a JSON object"
        properties.update(body_schema.get("properties") or {})
        required += [r for r in body_schema.get("required") or [] if isinstance(r, str)]
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = sorted(set(required))
    description = operation.get("summary") or operation.get("description") or f"{method} {path}"
    return {"parameters": parameters, "description": str(description)[:1000]}, ""


def http_tools_import(*, shop_id: int, text: str, base_url: str = "") -> ImportReport:
    """Create the document's GET/POST operations as the shop's HTTP tools (inactive ones are not
    made: each is ready to tick). Raises ValueError for a document that is not OpenAPI."""
    document = openapi_parse(text)
    servers = document.get("servers") or [{}]
    base = (base_url or (servers[0] or {}).get("url") or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError("Give the API's base URL: the document names no absolute server URL.")
    report = ImportReport()
    for path, item in document["paths"].items():
        item = _resolve(document, item)
        if not isinstance(item, dict) or not isinstance(path, str):
            continue
        shared = item.get("parameters") or []
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            if method in ("parameters", "summary", "description", "servers"):
                continue
            if method not in METHODS:
                report.skipped.append(f"{label}: only GET and POST become tools")
                continue
            spec, why = _operation_tool(document, method, path, operation or {}, shared)
            if spec is None:
                report.skipped.append(f"{label}: {why}")
                continue
            name = _name(operation or {}, method, path)
            if HttpTool.objects.filter(shop_id=shop_id, name=name).exists():
                report.skipped.append(f"{label}: a tool named {name!r} exists")
                continue
            tool = HttpTool(
                shop_id=shop_id,
                name=name,
                method=method.upper(),
                url=base + path,
                **spec,
            )
            try:
                tool.full_clean()
            except ValidationError as exc:
                problems = "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
                report.skipped.append(f"{label}: {problems}")
                continue
            tool.save()
            report.created.append(name)
    return report

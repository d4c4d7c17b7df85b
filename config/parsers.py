"""JSON parsing that turns hostile bodies (deep nesting, bad encoding) into 400s."""

from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def _depth(value, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("The request body is not UTF-8.") from exc
        # Refuse absurd nesting before json.loads recurses into it.
        if text.count("[") + text.count("{") > 10_000 and _bracket_depth(text) > MAX_DEPTH:
            raise ParseError("The JSON is nested too deeply.")
        try:
            # NaN and Infinity are not JSON (RFC 8259), though Python's parser accepts them.
            data = json.loads(text, parse_constant=_not_json) if text.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise ParseError("The request body is not valid JSON.") from exc
        if _depth(data, MAX_DEPTH) > MAX_DEPTH:
            raise ParseError("The JSON is nested too deeply.")
        # Imported here: config.errors imports DRF's views, which import this parser.
        from config.input_guard import check_value

        check_value(data)  # NUL, lone surrogates, unsafe numbers: 400 INVALID_INPUT
        return data


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest

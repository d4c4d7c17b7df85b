"""The shape check of the typed contracts' tests: a value read back from Redis, PostgreSQL or
JSON compared key by key, at every depth, with the TypedDict that names it (chatbots.config_types,
conversations.event_types). mypy checks the code against the types; this checks the data."""

from __future__ import annotations

import types
import typing
from typing import Any

SCALARS: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),  # JSON writes 30.0 as 30.0, but a float field may hold an int
    str: (str,),
    bool: (bool,),
}


def shape_problems(value: Any, kind: Any, path: str = "config") -> list[str]:
    """Where `value` departs from the type `kind`: a required key missing, a key the TypedDict
    does not name, or a scalar of another type, through nested TypedDicts, lists and optionals."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(kind)
        if value is None:
            return [] if type(None) in options else [f"{path} is null"]
        [kind] = [option for option in options if option is not type(None)]
        return shape_problems(value, kind, path)
    if origin is list:
        if not isinstance(value, list):
            return [f"{path} is not a list"]
        [item] = typing.get_args(kind)
        return [p for i, v in enumerate(value) for p in shape_problems(v, item, f"{path}[{i}]")]
    if origin is dict:
        return [] if isinstance(value, dict) else [f"{path} is not an object"]
    if typing.is_typeddict(kind):
        if not isinstance(value, dict):
            return [f"{path} is not an object ({kind.__name__})"]
        named = kind.__required_keys__ | kind.__optional_keys__
        problems = [
            f"{path}.{key} is missing" for key in sorted(kind.__required_keys__ - value.keys())
        ]
        problems += [
            f"{path}.{key} is not in {kind.__name__}" for key in sorted(value.keys() - named)
        ]
        hints = typing.get_type_hints(kind)
        for key in sorted(value.keys() & named):
            problems += shape_problems(value[key], hints[key], f"{path}.{key}")
        return problems
    if kind in SCALARS and not isinstance(value, SCALARS[kind]):
        return [f"{path} is a {type(value).__name__}, not a {kind.__name__}"]
    return []

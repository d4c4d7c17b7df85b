"""The hostile values the fuzz tests share: what a hostile or broken client puts in a field.

The REST, Socket.IO and inbox fuzz tests each build their own mix of values from these.
"""

from __future__ import annotations

NUL = "a\x00b"
SURROGATE = "x\ud800y"  # a lone surrogate: not encodable as UTF-8


def nested(depth: int) -> object:
    """A value `depth` lists deep, for the parsers and validators that recurse."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value

"""Deterministic embeddings for the fake OpenAI server's `/v1/embeddings`.

A hashed bag of word prefixes, normalised: texts sharing words (or their first five letters,
a crude stem that lets "returns" meet "returned") point the same way. Good enough to make
vector search behave differently from full-text search in tests; no weights, no download.
"""

from __future__ import annotations

import hashlib
import math
import re

DEFAULT_DIMENSIONS = 1536
WORD = re.compile(r"\w+", re.UNICODE)


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word in WORD.findall(text.lower()):
        if len(word) < 2:
            continue
        for feature, weight in ((word, 1.0), (word[:5], 0.7)):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % dimensions
            vector[index] += weight if digest[4] & 1 else -weight
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]

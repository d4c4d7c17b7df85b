"""Cache of minted platform tokens (Shopify/commercetools client credentials, Magento admin).

Tokens are kept in Redis, encrypted like every other secret, until shortly before they expire,
so every worker process shares one token instead of minting its own per lookup. The key holds a
fingerprint of the credentials: new credentials in the admin never reuse an old token.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import cast

from chatbots.secrets import SecretDecryptionError, decrypt, encrypt
from config.redis import get_redis
from orders.providers.base import SourceConfig

KEY = "cb:orders:token:{source}:{fingerprint}"
# Refresh this long before the platform's expiry, so a token never dies mid-lookup.
MARGIN_SECONDS = 120


def _key(source: SourceConfig) -> str:
    material = "\0".join(
        (
            source.kind,
            source.base_url,
            source.auth_url,
            source.client_id,
            source.client_secret,
            source.scope,
            source.project_key,
        )
    )
    fingerprint = hashlib.sha256(material.encode()).hexdigest()[:16]
    return KEY.format(source=source.id, fingerprint=fingerprint)


def _read(key: str) -> str | None:
    # The shared client answers bytes (config.redis: no decode_responses).
    raw = cast(bytes | None, get_redis().get(key))
    if raw is None:
        return None
    try:
        return decrypt(raw.decode())
    except SecretDecryptionError:
        return None


def _write(key: str, token: str, ttl: int) -> None:
    get_redis().set(key, encrypt(token), ex=ttl)


def _drop(key: str) -> None:
    get_redis().delete(key)


async def cached_token(
    source: SourceConfig,
    mint: Callable[[], Awaitable[tuple[str, float | None]]],
    *,
    default_ttl: float = 3600,
) -> str:
    """The cached token, or a freshly minted one (`mint` returns (token, expires_in seconds))."""
    key = _key(source)
    token = await asyncio.to_thread(_read, key)
    if token:
        return token
    token, expires_in = await mint()
    lifetime = float(expires_in) if expires_in else default_ttl
    ttl = int(max(1.0, min(lifetime - MARGIN_SECONDS, lifetime * 0.9)))
    await asyncio.to_thread(_write, key, token, ttl)
    return token


async def forget_token(source: SourceConfig) -> None:
    """Drop the cached token (the platform said it expired or was revoked)."""
    await asyncio.to_thread(_drop, _key(source))

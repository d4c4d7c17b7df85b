"""Client of OpenAI-compatible `/v1/embeddings` endpoints (a knowledge base's embedding model).

Used on the worker's event loop for a question (async) and in Celery for document chunks
(sync, batched). Errors are UpstreamErrors with the key scrubbed, like the chat clients'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from django.conf import settings

from aiclients import errors as E
from aiclients.errors import UpstreamError
from outbound import guard


def _request_kw(*, base_url: str, api_key: str, model: str, texts: list[str]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return {
        "url": f"{base_url.rstrip('/')}/embeddings",
        "headers": headers,
        "json": {"model": model, "input": texts},
    }


def _vectors(response: httpx.Response, *, api_key: str, count: int) -> list[list[float]]:
    secrets = (api_key,) if api_key else ()
    if response.status_code >= 400:
        raise UpstreamError(
            E.UPSTREAM_AUTH if response.status_code in (401, 403) else E.UPSTREAM_BAD_RESPONSE,
            f"embeddings HTTP {response.status_code}: {response.text[:200]}",
            message=f"The embedding endpoint answered HTTP {response.status_code}.",
            status=response.status_code,
            secrets=secrets,
        )
    try:
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(
            E.UPSTREAM_BAD_RESPONSE,
            f"embeddings: unreadable answer ({exc!r})",
            message="The embedding endpoint answered with something that is not embeddings.",
            secrets=secrets,
        ) from exc
    if len(vectors) != count:
        raise UpstreamError(
            E.UPSTREAM_BAD_RESPONSE,
            f"embeddings: {len(vectors)} vectors for {count} inputs",
            message="The embedding endpoint returned the wrong number of vectors.",
            secrets=secrets,
        )
    return vectors


def _failure(exc: httpx.HTTPError, api_key: str, where: str) -> UpstreamError:
    code = E.UPSTREAM_TIMEOUT if isinstance(exc, httpx.TimeoutException) else E.UPSTREAM_UNAVAILABLE
    return UpstreamError(
        code, f"{where}: {exc!r}", message=guard.unreachable(where), secrets=(api_key,)
    )


async def embeddings_create_async(
    *, base_url: str, api_key: str, model: str, texts: list[str], timeout: float
) -> list[list[float]]:
    kw = _request_kw(base_url=base_url, api_key=api_key, model=model, texts=texts)
    try:
        async with httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=settings.UPSTREAM_TRUST_ENV,
            event_hooks=guard.async_hooks(),
        ) as client:
            response = await client.post(**kw)
    except httpx.HTTPError as exc:
        raise _failure(exc, api_key, httpx.URL(base_url).host or base_url) from exc
    return _vectors(response, api_key=api_key, count=len(texts))


def embeddings_create(
    *,
    base_url: str,
    api_key: str,
    model: str,
    texts: list[str],
    timeout: float,
    batch: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Vectors of `texts`, `batch` inputs per request (one request per batch, in order);
    `on_batch(done)` is told how many texts have vectors after each request."""
    vectors: list[list[float]] = []
    with httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        trust_env=settings.UPSTREAM_TRUST_ENV,
        event_hooks=guard.sync_hooks(),
    ) as client:
        for start in range(0, len(texts), batch):
            part = texts[start : start + batch]
            kw = _request_kw(base_url=base_url, api_key=api_key, model=model, texts=part)
            try:
                response = client.post(**kw)
            except httpx.HTTPError as exc:
                raise _failure(exc, api_key, httpx.URL(base_url).host or base_url) from exc
            vectors.extend(_vectors(response, api_key=api_key, count=len(part)))
            if on_batch is not None:
                on_batch(len(vectors))
    return vectors

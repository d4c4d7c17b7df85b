"""Synchronous Pinecone helpers for the admin's "Test connection": describe an index, run a query.

Wire protocol: ai_protocols.md §4 (API version 2025-10).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from aiclients import errors as E
from aiclients.errors import UpstreamError
from outbound import guard

API_VERSION = "2025-10"
CONTROL_URL = "https://api.pinecone.io"


def _headers(api_key: str, api_version: str) -> dict[str, str]:
    return {
        "Api-Key": api_key,
        "X-Pinecone-Api-Version": api_version,
        "Accept": "application/json",
    }


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return f"{err.get('code', '')}: {err.get('message', '')}"
        if "message" in data:
            return str(data["message"])
    return str(data)[:300]


def _request(
    method: str, url: str, *, api_key: str, timeout: float, where: str, **kw: Any
) -> httpx.Response:
    secrets = (api_key,)
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, event_hooks=guard.sync_hooks()
        ) as client:
            return client.request(method, url, **kw)
    except httpx.ConnectTimeout:
        code, detail = E.UPSTREAM_CONNECT_TIMEOUT, f"connect to {where} timed out"
    except httpx.TimeoutException:
        code, detail = E.UPSTREAM_TIMEOUT, f"{where} did not answer in time"
    except httpx.HTTPError as exc:
        code, detail = E.UPSTREAM_UNAVAILABLE, f"{where}: {exc!r}"
    # The codes and details (for operators) differ; the message staff read does not, so Test
    # connection cannot tell open ports from closed ones (outbound/guard.py).
    raise UpstreamError(code, detail, message=guard.unreachable(where), secrets=secrets)


def _raise_for_status(response: httpx.Response, api_key: str, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = f"Pinecone HTTP {status}: {_error_message(response)}"
    kw: dict[str, Any] = {"status": status, "secrets": (api_key,)}
    if status == 401:
        raise UpstreamError(E.UPSTREAM_AUTH, detail, message="Pinecone rejected the API key.", **kw)
    if status == 403:
        msg = f"This Pinecone API key is not allowed to use {what}."
        raise UpstreamError(E.UPSTREAM_AUTH, detail, message=msg, **kw)
    if status == 404:
        msg = f"Pinecone has no {what} in this project. Check the name."
        raise UpstreamError(E.UPSTREAM_BAD_REQUEST, detail, message=msg, **kw)
    if status == 429:
        msg = "Pinecone is limiting requests right now. Try again in a minute."
        raise UpstreamError(E.UPSTREAM_RATE_LIMITED, detail, message=msg, **kw)
    if status >= 500:
        msg = f"Pinecone is having problems right now (HTTP {status}). Try again later."
        raise UpstreamError(E.UPSTREAM_UNAVAILABLE, detail, message=msg, **kw)
    msg = f"Pinecone refused the request: {_error_message(response)}"
    raise UpstreamError(E.UPSTREAM_BAD_REQUEST, detail, message=msg, **kw)


def _json(response: httpx.Response, api_key: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamError(
            E.UPSTREAM_BAD_RESPONSE,
            f"non-JSON answer: {response.text[:200]!r}",
            message="The Pinecone address answered with something that is not Pinecone.",
            secrets=(api_key,),
        )
    return data


def describe_index(
    *,
    api_key: str,
    index_name: str,
    control_url: str = CONTROL_URL,
    timeout: float = 10.0,
    expected_dimension: int | None = None,
    api_version: str = API_VERSION,
) -> dict[str, Any]:
    """The IndexModel of a ready index; UpstreamError (with a staff-readable message) otherwise."""
    if not api_key:
        raise UpstreamError(E.UPSTREAM_AUTH, "no API key", message="Enter a Pinecone API key.")
    if not index_name:
        raise UpstreamError(E.UPSTREAM_BAD_REQUEST, "no index", message="Enter an index name.")
    base = control_url.rstrip("/")
    response = _request(
        "GET",
        f"{base}/indexes/{quote(index_name, safe='')}",
        api_key=api_key,
        timeout=timeout,
        where=httpx.URL(base).host or base,
        headers=_headers(api_key, api_version),
    )
    _raise_for_status(response, api_key, f"index named '{index_name}'")
    model = _json(response, api_key)
    status = model.get("status") or {}
    if not status.get("ready"):
        state = status.get("state") or "unknown"
        raise UpstreamError(
            E.UPSTREAM_UNAVAILABLE,
            f"index {index_name} not ready: {state}",
            message=f"Index '{index_name}' exists but is not ready yet (state: {state}).",
            category=E.UPSTREAM_AI,
            secrets=(api_key,),
        )
    dimension = model.get("dimension")
    if expected_dimension is not None and dimension != expected_dimension:
        raise UpstreamError(
            E.UPSTREAM_BAD_REQUEST,
            f"dimension {dimension} != {expected_dimension}",
            message=(
                f"Index '{index_name}' stores vectors of dimension {dimension}, but the embedding "
                f"model produces {expected_dimension}."
            ),
            secrets=(api_key,),
        )
    return model


def query_index(
    *,
    api_key: str,
    host: str,
    vector: list[float],
    top_k: int,
    namespace: str = "",
    metadata_filter: dict[str, Any] | None = None,
    include_metadata: bool = True,
    timeout: float = 10.0,
    api_version: str = API_VERSION,
) -> dict[str, Any]:
    """POST /query against an index host (from describe_index; https:// is added if missing)."""
    base = host if "://" in host else f"https://{host}"
    body: dict[str, Any] = {
        "vector": vector,
        "topK": top_k,
        "includeMetadata": include_metadata,
        "includeValues": False,
    }
    if namespace:
        body["namespace"] = namespace
    if metadata_filter:
        body["filter"] = metadata_filter
    response = _request(
        "POST",
        f"{base.rstrip('/')}/query",
        api_key=api_key,
        timeout=timeout,
        where=httpx.URL(base).host or base,
        headers=_headers(api_key, api_version),
        json=body,
    )
    _raise_for_status(response, api_key, "index at this host")
    return _json(response, api_key)

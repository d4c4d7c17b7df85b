"""Admin "Test connection" checks: one cheap real request, an answer shop staff understand.

Every function returns (ok, message); messages never contain the key or a full URL.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from aiclients.errors import UpstreamError, redact
from aiclients.flowise import chatflow_id_accepted
from aiclients.pinecone import CONTROL_URL, describe_index
from outbound import guard

_FLOWISE_PREFIX = "Error: predictionsServices.buildChatflow - "


def _where(base_url: str) -> str:
    """The host only: paths and query strings can carry tokens."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        return "this address"
    return url.host or "this address"


def _network_failure(exc: httpx.HTTPError, where: str) -> str:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "The address is not a valid web address (it should start with https://)."
    # Refused, closed, silent, reset, not HTTP, or refused by the address guard after the name
    # changed: one sentence, so the connection test cannot tell open ports from closed ones.
    return guard.unreachable(where)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def probe_flowise(
    base_url: str, api_key: str, chatflow_id: str, *, timeout: float = 30.0
) -> tuple[bool, str]:
    """Ping the server, then ask the chatflow "ping" (non-streaming) with the configured key."""
    where = _where(base_url)
    if refusal := guard.url_refusal(base_url):
        return False, refusal
    base = base_url.rstrip("/")
    secrets = (api_key,) if api_key else ()
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, event_hooks=guard.sync_hooks()
        ) as client:
            ping = client.get(f"{base}/api/v1/ping")
            # Flowise answers any unknown path with its UI page and 200: only "pong" proves it.
            if ping.status_code != 200 or ping.text.strip() != "pong":
                return False, (
                    f"{where} answered, but not like a Flowise server (no 'pong' from "
                    "/api/v1/ping). Check the address."
                )
            if not chatflow_id_accepted(chatflow_id):
                return False, (
                    "The chatflow ID should look like 3f2a1b0c-1d2e-4f50-8a9b-0c1d2e3f4a5b. "
                    "Copy it from the chatflow's API dialog in Flowise."
                )
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            body = {
                "question": "ping",
                "streaming": False,
                "chatId": f"connection-test-{uuid.uuid4()}",
            }
            response = client.post(
                f"{base}/api/v1/prediction/{chatflow_id}", json=body, headers=headers
            )
    except httpx.HTTPError as exc:
        return False, _network_failure(exc, where)

    status = response.status_code
    data = _json(response)
    message = data.get("message", "") if isinstance(data, dict) else response.text[:200]
    message = redact(str(message).removeprefix(_FLOWISE_PREFIX), secrets)[:200]
    if status == 200:
        if isinstance(data, dict) and (data.get("text") or data.get("json")):
            return True, "Connected: the chatflow answered a test question."
        return False, "Flowise answered the test question with an empty or unexpected reply."
    if status == 400:
        return False, "Flowise says the chatflow ID is not valid."
    if status == 404:
        return False, "Flowise has no chatflow with this ID. Check the ID in Flowise's API dialog."
    if status in (401, 403) or (status == 500 and "Unauthorized" in message):
        if api_key:
            return False, "Flowise refused the API key for this chatflow. Check the key."
        return False, "This chatflow needs an API key. Enter the key assigned to it in Flowise."
    if status == 429:
        return False, "Flowise is limiting requests right now. Try again in a minute."
    if status in (502, 503, 504):
        return False, f"The Flowise server is temporarily unavailable (HTTP {status})."
    return False, f"The chatflow failed to answer the test question: {message}"


def flowise_ping(base_url: str, *, timeout: float = 10.0) -> tuple[bool, str]:
    """GET {base}/api/v1/ping: is this a Flowise server (for an endpoint no flow uses yet)?"""
    if refusal := guard.url_refusal(base_url):
        return False, refusal
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, event_hooks=guard.sync_hooks()
        ) as client:
            response = client.get(f"{base_url.rstrip('/')}/api/v1/ping")
    except httpx.HTTPError as exc:
        return False, _network_failure(exc, _where(base_url))
    if response.status_code == 200 and response.text.strip() == "pong":
        return True, (
            "The Flowise server answers. No flow uses this endpoint yet, so the key and a "
            "chatflow could not be tested."
        )
    return (
        False,
        "The address answered, but not like a Flowise server (no 'pong' from /api/v1/ping).",
    )


def openai_models_list(
    base_url: str, api_key: str, *, timeout: float = 15.0
) -> tuple[list[str] | None, str]:
    """GET {base}/models with the key: the model ids offered, or None and why not (in words)."""
    where = _where(base_url)
    if refusal := guard.url_refusal(base_url):
        return None, refusal
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, event_hooks=guard.sync_hooks()
        ) as client:
            response = client.get(f"{base_url.rstrip('/')}/models", headers=headers)
    except httpx.HTTPError as exc:
        return None, _network_failure(exc, where)

    status = response.status_code
    data = _json(response)
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if status == 401:
        return None, "The API key was rejected. Check that it is complete and still active."
    if status == 403:
        return None, "This API key is not allowed to use this service (HTTP 403)."
    if status == 404:
        return None, (
            f"{where} does not look like an OpenAI-compatible API (no /models). "
            "The address usually ends with /v1."
        )
    if status == 429:
        if code == "insufficient_quota":
            return None, "The AI account has run out of credit (quota exceeded)."
        return None, "The AI service is limiting requests right now. Try again in a minute."
    if status >= 500:
        return None, f"The AI service is having problems right now (HTTP {status})."
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None, f"{where} answered, but not like an OpenAI-compatible API."
    return [str(m["id"]) for m in data["data"] if isinstance(m, dict) and m.get("id")], ""


def probe_openai(
    base_url: str, api_key: str, model: str, *, timeout: float = 15.0
) -> tuple[bool, str]:
    """GET {base}/models with the key and check that the model is offered."""
    ids, failure = openai_models_list(base_url, api_key, timeout=timeout)
    if ids is None:
        return False, failure
    if not model:
        return False, "Connected, but no model is set. Choose one of: " + ", ".join(ids[:10])
    if model in ids:
        return True, f"Connected: model '{model}' is available."
    listed = ", ".join(str(i) for i in ids[:10]) or "none"
    return (
        False,
        f"Connected, but model '{model}' is not offered with this key. Available: {listed}.",
    )


def probe_pinecone(
    api_key: str,
    index_name: str,
    *,
    control_url: str = CONTROL_URL,
    expected_dimension: int | None = None,
    timeout: float = 10.0,
) -> tuple[bool, str]:
    """Describe the index: key valid, index exists, ready, and (optionally) the right dimension."""
    if refusal := guard.url_refusal(control_url):
        return False, refusal
    try:
        model = describe_index(
            api_key=api_key,
            index_name=index_name,
            control_url=control_url,
            timeout=timeout,
            expected_dimension=expected_dimension,
        )
    except UpstreamError as err:
        return False, err.message
    return True, f"Connected: index '{index_name}' is ready (dimension {model.get('dimension')})."

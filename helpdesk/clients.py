"""Ticket creation over the helpdesks' REST APIs: Freshdesk v2 and Zendesk (order_apis.md §5).

Freshdesk: Basic auth with the API key as user name and `X` as password; `POST /api/v2/tickets`
answers 201 with the ticket. Zendesk: Basic `{agent email}/token:{api token}`;
`POST /api/v2/tickets.json` answers 201 with `{"ticket": {...}}`. Both rate limit with 429 and
`Retry-After`; Zendesk's 429 body may be plain text, so error bodies are never parsed blindly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from outbound import guard, policy

logger = logging.getLogger(__name__)

_client: httpx.Client | None = None
_lock = threading.Lock()


def http() -> httpx.Client:
    """One pooled client per process (Celery threads share it; httpx.Client is thread-safe)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = httpx.Client(
                    limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
                    timeout=httpx.Timeout(settings.HELPDESK_TIMEOUT, connect=5.0),
                    follow_redirects=False,  # never carry the key to another host
                    trust_env=settings.UPSTREAM_TRUST_ENV,
                    headers={"User-Agent": "chatbot-backend-helpdesk/1.0"},
                    # Each new connection's address is checked before the request is written
                    # (outbound/guard.py); the setting is read per connection.
                    event_hooks=policy.sync_hooks(),
                )
    return _client


@dataclass
class HelpdeskConfig:
    kind: str
    api_base: str
    api_key: str = field(repr=False)
    agent_email: str = ""


@dataclass
class TicketRequest:
    subject: str
    description_html: str
    email: str
    name: str
    external_id: str  # identifies the visitor when there is no email
    priority: int
    source: str  # "chat" (handoff) or "form" (contact form)
    tags: list[str]


class HelpdeskError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _excerpt(response: httpx.Response, secret: str) -> str:
    text = response.text.strip().replace("\n", " ")[:300]
    return text.replace(secret, "••••••••") if secret else text


def _freshdesk_errors(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        return "; ".join(
            f"{e.get('field', '?')}: {e.get('message', '')} ({e.get('code', '')})"
            for e in errors
            if isinstance(e, dict)
        )
    if isinstance(body, dict) and body.get("message"):
        return f"{body['message']} ({body.get('code', '')})"
    return ""


def _request(config: HelpdeskConfig, method: str, path: str, **kwargs: Any) -> httpx.Response:
    if config.kind == "zendesk":
        auth = (f"{config.agent_email}/token", config.api_key)
    else:
        auth = (config.api_key, "X")
    url = f"{config.api_base}{path}"
    try:
        return http().request(method, url, auth=auth, **kwargs)
    except httpx.TransportError as exc:
        # Staff read the message (Test connection, the handoff's error): a refused, closed,
        # silent, reset or non-HTTP port reads alike, so it cannot map which ports are open.
        # Operators get the kind in the log.
        logger.warning("helpdesk request to %s failed: %r", httpx.URL(url).host, exc)
        raise HelpdeskError(
            guard.unreachable(httpx.URL(url).host or "this address"),
            # A name that leads to a refused address leads there again.
            retryable=not isinstance(exc, guard.RefusedConnection),
        ) from None


def _raise_for(config: HelpdeskConfig, response: httpx.Response) -> None:
    status = response.status_code
    name = "Zendesk" if config.kind == "zendesk" else "Freshdesk"
    if status == 429:
        raise HelpdeskError(
            f"{name} is rate limiting us (429).",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )
    if status >= 500:
        raise HelpdeskError(
            f"{name} answered HTTP {status}.",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )
    detail = (_freshdesk_errors(response) if config.kind == "freshdesk" else "") or _excerpt(
        response, config.api_key
    )
    if status == 401:
        message = f"{name} rejected the API key (HTTP 401: {detail})."
    elif status == 403:
        message = f"{name} refused access (HTTP 403: {detail}). Check the key's permissions."
    elif status == 404:
        message = f"{name} answered 404: check the domain ({detail})."
    elif status == 400:
        message = f"{name} refused the ticket as invalid: {detail}."
    else:
        message = f"{name} answered HTTP {status}: {detail}."
    raise HelpdeskError(message, retryable=False, status=status)


def ticket_create(config: HelpdeskConfig, ticket: TicketRequest) -> str:
    """Create the ticket; returns its id. Raises HelpdeskError (retryable or not)."""
    if config.kind == "zendesk":
        body: dict[str, Any] = {
            "ticket": {
                "subject": ticket.subject,
                "comment": {"html_body": ticket.description_html},
                "priority": {1: "low", 2: "normal", 3: "high", 4: "urgent"}[ticket.priority],
                "tags": ticket.tags,
            }
        }
        if ticket.email:
            body["ticket"]["requester"] = {
                "name": ticket.name or ticket.email,
                "email": ticket.email,
            }
        response = _request(config, "POST", "/api/v2/tickets.json", json=body)
        if response.status_code != 201:
            _raise_for(config, response)
        ticket_id = (response.json().get("ticket") or {}).get("id")
    else:
        body = {
            "subject": ticket.subject,
            "description": ticket.description_html,
            "status": 2,  # Open
            "priority": ticket.priority,
            "source": 7 if ticket.source == "chat" else 9,  # Chat / Feedback widget
            "tags": ticket.tags,
        }
        if ticket.email:
            body["email"] = ticket.email
            if ticket.name:
                body["name"] = ticket.name
        else:
            body["unique_external_id"] = ticket.external_id
            body["name"] = ticket.name or "Chat visitor"
        response = _request(config, "POST", "/api/v2/tickets", json=body)
        if response.status_code != 201:
            _raise_for(config, response)
        ticket_id = response.json().get("id")
    if ticket_id in (None, ""):
        raise HelpdeskError("The helpdesk's answer has no ticket id.", retryable=False)
    return str(ticket_id)


def connection_check(config: HelpdeskConfig) -> str:
    """List one ticket with the key: proves domain and key without creating anything."""
    if refusal := guard.url_refusal(config.api_base):
        raise HelpdeskError(refusal, retryable=False)
    path = "/api/v2/tickets.json" if config.kind == "zendesk" else "/api/v2/tickets"
    response = _request(config, "GET", path, params={"per_page": 1})
    if response.status_code != 200:
        _raise_for(config, response)
    name = "Zendesk" if config.kind == "zendesk" else "Freshdesk"
    remaining = response.headers.get("x-ratelimit-remaining") or response.headers.get(
        "x-rate-limit-remaining"
    )
    limit = f" ({remaining} requests left in this rate-limit window)" if remaining else ""
    return f"Connected to {name} at {config.api_base}: the API key works{limit}."

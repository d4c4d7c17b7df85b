"""Fake Freshdesk API v2 over real HTTP: ticket creation with validation and rate limits.

Per order_apis.md §5.1: Basic auth with the API key as user and `X` as password (401
`invalid_credentials`), `POST /api/v2/tickets` validated (requester rule, required fields,
status/priority/source enums, `cf_` custom fields that must exist, email format; 400
"Validation failed" with field errors, 415 for a non-JSON body), 201 + `Location` + the ticket,
`X-RateLimit-*` on every response and 429 + `Retry-After` after N calls per window, counting
invalid calls too. `GET /api/v2/tickets` lists tickets (used by "Test connection").

Run standalone: `python -m tests.fakes.freshdesk --port 8114`.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from typing import Any

from tests.fakes._server import COMMON_DEFAULTS, FakeServer, Request, Responder

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REQUESTER_FIELDS = (
    "requester_id",
    "email",
    "facebook_id",
    "phone",
    "twitter_id",
    "unique_external_id",
)
KNOWN_FIELDS = {
    *REQUESTER_FIELDS,
    "name",
    "subject",
    "type",
    "status",
    "priority",
    "description",
    "responder_id",
    "attachments",
    "cc_emails",
    "custom_fields",
    "due_by",
    "email_config_id",
    "fr_due_by",
    "group_id",
    "parent_id",
    "product_id",
    "source",
    "tags",
    "company_id",
    "internal_agent_id",
    "internal_group_id",
    "lookup_parameter",
}

FRESHDESK_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "api_key": "fd_fake_key_0001",
    "custom_fields": ["cf_order_number"],  # custom fields that exist in this account
    "rate_limit": 50,  # calls per window, valid or not
    "rate_window": 60.0,
}


def fd_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeFreshdesk(FakeServer):
    """Freshdesk. Created tickets are in `srv.tickets` (the JSON as received, plus the id)."""

    name = "fake-freshdesk"
    DEFAULTS = FRESHDESK_DEFAULTS

    def _init_state(self) -> None:
        self.tickets: list[dict[str, Any]] = []
        self._window_start = time.monotonic()
        self._window_calls = 0

    def _on_reset(self) -> None:
        self.tickets.clear()
        self._window_start = time.monotonic()
        self._window_calls = 0

    def _rate(self, sc) -> tuple[list[tuple[str, str]], float | None]:
        """Count this call; return the rate-limit headers and, when over, the seconds to wait."""
        now = time.monotonic()
        if now - self._window_start >= float(sc.rate_window):
            self._window_start, self._window_calls = now, 0
        self._window_calls += 1
        limit = int(sc.rate_limit)
        headers = [
            ("X-RateLimit-Total", str(limit)),
            ("X-RateLimit-Remaining", str(max(0, limit - self._window_calls))),
            ("X-RateLimit-Used-CurrentRequest", "1"),
        ]
        if self._window_calls > limit:
            wait = max(1, int(float(sc.rate_window) - (now - self._window_start) + 0.999))
            return headers, float(wait)
        return headers, None

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        if await self.before_headers(sc, resp):
            return
        headers, wait = self._rate(sc)
        if sc.status:
            status = int(sc.status)
            if sc.retry_after is not None:
                headers.append(("Retry-After", str(sc.retry_after)))
            body = {"code": "fault", "message": "Injected fault."}
            if status == 429:
                body = {"code": "rate_limit", "message": "You have exceeded the limit of requests"}
            await resp.send(status, body, headers=headers)
            return
        if wait is not None:
            await resp.send(
                429,
                {"code": "rate_limit", "message": "You have exceeded the limit of requests"},
                headers=[*headers, ("Retry-After", str(int(wait)))],
            )
            return
        if not self._authorized(req, sc):
            await resp.send(
                401,
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
                headers=headers,
            )
            return
        path = req.path.rstrip("/")
        if path == "/api/v2/tickets" and req.method == "GET":
            await resp.send(200, self.tickets[-30:], headers=headers)
        elif path == "/api/v2/tickets" and req.method == "POST":
            await self._create(req, resp, sc, headers)
        elif path == "/api/v2/tickets":
            await resp.send(
                405,
                {"code": "method_not_allowed", "message": "Method not allowed"},
                headers=headers,
            )
        else:
            await resp.send(404, {"code": "not_found", "message": "Not found"}, headers=headers)

    @staticmethod
    def _authorized(req: Request, sc) -> bool:
        header = req.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, _password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == sc.api_key

    async def _create(self, req: Request, resp: Responder, sc, headers: list) -> None:
        content_type = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            await resp.send(
                415,
                {
                    "code": "invalid_content_type",
                    "message": "Content-Type header should have application/json",
                },
                headers=headers,
            )
            return
        body = req.json
        if not isinstance(body, dict):
            await self._invalid(
                resp,
                headers,
                [{"code": "invalid_json", "message": "Request body has invalid json format"}],
            )
            return
        errors = self.validate(body, sc)
        if errors:
            await self._invalid(resp, headers, errors)
            return
        ticket_id = len(self.tickets) + 1
        now = fd_now()
        ticket = {
            "id": ticket_id,
            "subject": body["subject"],
            "description": body["description"],
            "description_text": re.sub(r"<[^>]+>", "", body["description"]),
            "status": body.get("status", 2),
            "priority": body.get("priority", 1),
            "source": body.get("source", 2),
            "requester_id": 4242,
            "responder_id": None,
            "group_id": None,
            "company_id": None,
            "type": body.get("type"),
            "tags": body.get("tags", []),
            "cc_emails": [],
            "fwd_emails": [],
            "reply_cc_emails": [],
            "spam": False,
            "fr_escalated": False,
            "is_escalated": False,
            "due_by": now,
            "fr_due_by": now,
            "custom_fields": body.get("custom_fields", {}),
            "created_at": now,
            "updated_at": now,
        }
        self.tickets.append({**body, "id": ticket_id})
        location = f"{self.url}/api/v2/tickets/{ticket_id}"
        await resp.send(201, ticket, headers=[*headers, ("Location", location)])

    async def _invalid(self, resp: Responder, headers: list, errors: list) -> None:
        await resp.send(
            400, {"description": "Validation failed", "errors": errors}, headers=headers
        )

    @staticmethod
    def validate(body: dict[str, Any], sc) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []

        def error(field: str, message: str, code: str) -> None:
            errors.append({"field": field, "message": message, "code": code})

        for field in body:
            if field not in KNOWN_FIELDS:
                error(field, "Unexpected/invalid field in request", "invalid_field")
        if not any(body.get(f) not in (None, "") for f in REQUESTER_FIELDS):
            error(
                "requester_id",
                "Please fill at least 1 of requester_id, phone, email, twitter_id, facebook_id, "
                "unique_external_id fields",
                "missing_field",
            )
        if body.get("phone") and not body.get("email") and not body.get("name"):
            error("name", "It should be a/an String", "missing_field")
        email = body.get("email")
        if email not in (None, "") and (not isinstance(email, str) or not EMAIL.match(email)):
            error("email", "It should be a valid email address", "invalid_value")
        for field in ("subject", "description"):
            if not isinstance(body.get(field), str) or not body.get(field):
                error(field, "It should be a/an String", "missing_field")
        enums = {"status": (2, 3, 4, 5), "priority": (1, 2, 3, 4), "source": (1, 2, 3, 7, 9, 10)}
        for field, allowed in enums.items():
            if field in body and body[field] not in allowed:
                error(
                    field,
                    "It should be one of these values: " + ",".join(str(a) for a in allowed),
                    "invalid_value",
                )
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            error("tags", "It should be a/an Array", "datatype_mismatch")
        custom = body.get("custom_fields", {})
        if not isinstance(custom, dict):
            error("custom_fields", "It should be a/an key/value pair", "datatype_mismatch")
        else:
            for key in custom:
                if not key.startswith("cf_") or key not in (sc.custom_fields or []):
                    error(key, "Unexpected/invalid field in request", "invalid_field")
        return errors


if __name__ == "__main__":
    FakeFreshdesk.main()

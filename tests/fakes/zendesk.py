"""Fake Zendesk Support API over real HTTP: ticket creation, Basic token auth, text/plain 429.

Per order_apis.md §5.2: Basic `{agent_email}/token:{api_token}` (401 `{"error": "Couldn't
authenticate you"}`), `POST /api/v2/tickets[.json]` with `{"ticket": {subject, comment,
requester, priority, tags}}` → 201 `{"ticket": {...}, "audit": {...}}`, `X-Rate-Limit` headers,
429 with `Retry-After` and a text/plain body. `GET /api/v2/tickets[.json]` lists tickets.

Run standalone: `python -m tests.fakes.zendesk --port 8115`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from tests.fakes._server import COMMON_DEFAULTS, FakeServer, Request, Responder

ZENDESK_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "agent_email": "agent@shop.example",
    "api_key": "zd_fake_token_0001",
    "rate_limit": 200,
    "rate_window": 60.0,
}
PRIORITIES = ("low", "normal", "high", "urgent")


class FakeZendesk(FakeServer):
    """Zendesk. Created tickets are in `srv.tickets` (the `ticket` object as received)."""

    name = "fake-zendesk"
    DEFAULTS = ZENDESK_DEFAULTS

    def _init_state(self) -> None:
        self.tickets: list[dict[str, Any]] = []
        self._window_start = time.monotonic()
        self._calls = 0

    def _on_reset(self) -> None:
        self.tickets.clear()
        self._calls = 0

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        if sc.delay_before_headers:
            await asyncio.sleep(sc.delay_before_headers)
        now = time.monotonic()
        if now - self._window_start >= float(sc.rate_window):
            self._window_start, self._calls = now, 0
        self._calls += 1
        headers = [
            ("X-Rate-Limit", str(sc.rate_limit)),
            ("X-Rate-Limit-Remaining", str(max(0, int(sc.rate_limit) - self._calls))),
        ]
        over = self._calls > int(sc.rate_limit)
        if (sc.status and int(sc.status) == 429) or over:
            retry = sc.retry_after if sc.retry_after is not None else 60
            await resp.send(
                429,
                "Number of allowed API requests per minute exceeded",
                content_type="text/plain; charset=utf-8",
                headers=[*headers, ("Retry-After", str(retry))],
            )
            return
        if sc.status:
            await resp.send(int(sc.status), {"error": "InternalError"}, headers=headers)
            return
        if not self._authorized(req, sc):
            await resp.send(401, {"error": "Couldn't authenticate you"}, headers=headers)
            return
        path = req.path.removesuffix(".json").rstrip("/")
        if path == "/api/v2/tickets" and req.method == "GET":
            await resp.send(
                200, {"tickets": self.tickets[-30:], "count": len(self.tickets)}, headers=headers
            )
        elif path == "/api/v2/tickets" and req.method == "POST":
            await self._create(req, resp, headers)
        else:
            await resp.send(404, {"error": "InvalidEndpoint"}, headers=headers)

    @staticmethod
    def _authorized(req: Request, sc) -> bool:
        header = req.headers.get("authorization", "")
        try:
            user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (
            header.startswith("Basic ")
            and user == f"{sc.agent_email}/token"
            and (token == sc.api_key)
        )

    async def _create(self, req: Request, resp: Responder, headers: list) -> None:
        body = req.json if isinstance(req.json, dict) else None
        ticket = body.get("ticket") if body else None
        details = {}
        if not isinstance(ticket, dict):
            details["base"] = [{"description": "Ticket is required"}]
        else:
            comment = ticket.get("comment") or {}
            if not (comment.get("body") or comment.get("html_body")):
                details["description"] = [{"description": "Description: cannot be blank"}]
            if ticket.get("priority") not in (None, *PRIORITIES):
                details["priority"] = [{"description": "Priority: is not valid"}]
        if details:
            await resp.send(
                422,
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": details,
                },
                headers=headers,
            )
            return
        ticket_id = 35436 + len(self.tickets)
        self.tickets.append({**ticket, "id": ticket_id})
        await resp.send(
            201,
            {
                "ticket": {
                    "id": ticket_id,
                    "status": "new",
                    "subject": ticket.get("subject"),
                    "priority": ticket.get("priority"),
                    "tags": ticket.get("tags", []),
                },
                "audit": {"id": ticket_id * 10, "events": []},
            },
            headers=[*headers, ("Location", f"{self.url}/api/v2/tickets/{ticket_id}.json")],
        )


if __name__ == "__main__":
    FakeZendesk.main()

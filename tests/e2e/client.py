"""A small widget-like client for end-to-end tests: REST, WebSocket with resume, polling."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import websockets


def widget_headers(chatbot_id: str) -> dict:
    """What the widget on the shop's page sends: the public key and the page's origin."""
    from chatbots.models import Chatbot

    bot = Chatbot.objects.get(public_id=chatbot_id)
    return {"X-Widget-Key": bot.widget_key, "Origin": (bot.allowed_origins or [""])[0]}


def post_message(base_url: str, chatbot_id: str, text: str, **extra) -> dict:
    headers = {**widget_headers(chatbot_id), **extra.pop("headers", {})}
    response = httpx.post(
        f"{base_url}/api/process-message",
        json={"chatbot_id": chatbot_id, "message_text": text, **extra},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def ws_events(
    reply: dict,
    *,
    after: int = 0,
    stop_after_id: int | None = None,
    timeout: float = 30,
    send_first: dict | None = None,
) -> list[dict]:
    """Connect, resume the turn from `after`, and collect events until `end` (or a cut point)."""
    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
    events: list[dict] = []
    async with websockets.connect(url, open_timeout=10) as ws:
        ready = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        assert ready["type"] == "ready", ready
        await ws.send(
            json.dumps(
                send_first
                or {"type": "resume", "turn_id": reply["turn_id"], "last_event_id": after}
            )
        )
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message.get("type") != "event":
                if message.get("type") == "error":
                    events.append(message)
                    return events
                continue
            events.append(message)
            if message["event"] == "end":
                return events
            if stop_after_id is not None and message["id"] >= stop_after_id:
                return events  # the socket closes here: a dropped connection mid-answer


def poll_events(
    base_url: str,
    reply: dict,
    *,
    after: int = 0,
    timeout: float = 30,
    seen: Callable[[str], object] | None = None,
) -> list[dict]:
    """Poll a turn's events to its end; `seen` gets each response's text first (the reliability
    harness keeps every answer to check none leaks a secret)."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {reply['conversation_token']}"}
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{base_url}/api/stream-events/{reply['turn_id']}",
            params={"after": after},
            headers=headers,
            timeout=10,
        )
        if seen is not None:
            seen(response.text)
        assert response.status_code == 200, response.text
        body = response.json()
        events.extend(body["events"])
        after = body["last_event_id"]
        if not body["has_more"]:
            return events
        if not body["events"]:
            time.sleep(0.05)
    raise AssertionError("polling did not reach the end in time")


def answer_text(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e.get("event") == "token")


def assert_gapless(events: list[dict], start: int = 1) -> None:
    ids = [e["id"] for e in events]
    assert ids == list(range(start, start + len(ids))), ids

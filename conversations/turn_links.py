"""What a client is told about a turn it started: where to follow it, which flow answers, and
whether the answer is a replay. Shared by process-message, upload-image, the session API and
the inbox, so none of them imports another's view module."""

from __future__ import annotations

from django.conf import settings

from chatbots.models import Chatbot
from chatbots.selectors import chatbot_config_get

# Stripe's name for "this answer is the stored one of an earlier request with the same key".
REPLAYED_HEADER = "Idempotent-Replayed"


def public_url(request, path: str, *, websocket: bool = False) -> str:
    """`path` on PUBLIC_BASE_URL (or, unset, the host the request came to); ws(s):// for a
    socket."""
    base = settings.PUBLIC_BASE_URL.rstrip("/") or f"{request.scheme}://{request.get_host()}"
    if websocket:
        base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return base + path


def flow_type_for(chatbot: Chatbot) -> str:
    """The flow known at submit time: `routing` when a router decides later, else the main flow.

    Read from the configuration customers get (cached; for a reviewed bot its live version),
    which is also what the worker will run: no query per message."""
    config = chatbot_config_get(public_id=chatbot.public_id)
    flows = config["flows"] if config is not None else []
    if any(f["role"] == "router" for f in flows):
        return "routing"
    return next((f["name"] for f in flows if f["is_main"]), "main")


def turn_follow_fields(request, *, conversation, turn) -> dict[str, str]:
    """What process-message and upload-image (with a message) both answer about the turn they
    started: its ids, the flow, and the URLs to follow it by Server-Sent Events or WebSocket.
    One place, so the two answers cannot drift apart."""
    return {
        "streaming_session_id": str(turn.pk),
        "turn_id": str(turn.pk),
        "message_id": str(turn.user_message_id),
        "flow_type": turn.flow or flow_type_for(conversation.chatbot),
        "streaming_url": public_url(request, f"/api/stream-events/{turn.pk}"),
        "websocket_url": public_url(
            request, f"/ws/conversations/{conversation.pk}/", websocket=True
        ),
    }

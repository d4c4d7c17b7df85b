"""`./run example`: the README's first API calls, ready to paste, with this checkout's widget key.

Starting a conversation takes the bot's widget key and an `Origin` the bot allows, both of
which differ per installation (docs/access.md), so the calls are printed here rather than
written out in the README with a key that would not work.
"""

from __future__ import annotations

import os
import sys

QUESTION = "How long does shipping take?"


def base_url(host: str, port: int) -> str:
    """Where a client on this machine reaches `./run`'s server."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def pick_origin(allowed: list[str], base: str) -> str | None:
    """The origin to send: the server's own when the bot allows it, else the first allowed."""
    exact = [origin for origin in allowed if origin.rstrip("/") == base]
    usable = [origin for origin in allowed if "*" not in origin]
    return (exact or usable or [None])[0]


def quickstart_commands(*, base: str, origin: str, widget_key: str, chatbot_id: str) -> str:
    """Shell commands (bash or zsh) that ask the bot a question and follow the answer."""
    body = f'{{"chatbot_id": "{chatbot_id}", "message_text": "{QUESTION}"}}'
    parse = "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"{}\"])'"
    return "\n".join(
        [
            f"# 1. Ask the {chatbot_id} bot a question the way its widget on {origin} does: with the",
            "#    bot's widget key and an Origin the bot allows. The reply names the turn and",
            "#    carries the conversation token.",
            f"REPLY=$(curl -s {base}/api/process-message \\",
            "  -H 'Content-Type: application/json' \\",
            f"  -H 'Origin: {origin}' \\",
            f"  -H 'X-Widget-Key: {widget_key}' \\",
            f"  -d '{body}')",
            "printf '%s\\n' \"$REPLY\"",
            "# 2. Follow the answer: the turn's events, read with the conversation token. While it",
            '#    says "has_more":true the bot is still typing: run the last line again.',
            f"TURN=$(printf '%s' \"$REPLY\" | {parse.format('turn_id')})",
            f"TOKEN=$(printf '%s' \"$REPLY\" | {parse.format('conversation_token')})",
            "sleep 3",
            f'curl -s "{base}/api/stream-events/$TURN?after=0" -H "Authorization: Bearer $TOKEN"',
        ]
    )


def main(chatbot_id: str = "demo") -> int:
    """Print the commands for the demo bot (Django is set up here, after the services)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from chatbots.models import Chatbot

    base = base_url(os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000")))
    chatbot = Chatbot.objects.filter(public_id=chatbot_id).first()
    if chatbot is None:
        print(
            f"run: there is no `{chatbot_id}` chatbot yet; `./run` loads it on its first start.",
            file=sys.stderr,
        )
        return 1
    origin = pick_origin(list(chatbot.allowed_origins), base)
    if origin is None:
        print(
            f"run: the `{chatbot_id}` chatbot allows no origin; add {base} to its allowed "
            "origins in the admin.",
            file=sys.stderr,
        )
        return 1
    print(
        quickstart_commands(
            base=base, origin=origin, widget_key=chatbot.widget_key, chatbot_id=chatbot_id
        )
    )
    return 0

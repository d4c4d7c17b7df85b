"""Fixtures of the images tests: a private MEDIA_ROOT, a bot that takes photos, upload helpers."""

from __future__ import annotations

import base64

import pytest

from chatbots.tests.factories import create_chatbot

ORIGIN = "https://shop.example"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    # Files written by a test stay in its own directory (FileSystemStorage follows the setting).
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def bot(db):
    return create_chatbot(public_id="shop", image_upload_enabled=True, language="en")


def widget_headers(chatbot) -> dict[str, str]:
    """What the widget sends to start a conversation: its key, from an allowed origin."""
    return {"X-Widget-Key": chatbot.widget_key, "Origin": ORIGIN}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def upload(client, body: dict, **headers):
    return client.post("/api/upload-image", body, content_type="application/json", headers=headers)


def upload_new(client, chatbot, data: bytes, mime: str = "", name: str = "photo", **extra):
    body = {
        "chatbot_id": chatbot.public_id,
        "image_data": {"name": name, "data": b64(data), "mime": mime},
    }
    body.update(extra)
    return upload(client, body, **widget_headers(chatbot))


def error_code(response) -> str:
    return response.json()["error"]["code"]

"""End to end: a photo goes through Daphne, the real worker describes it with the bot's image flow
on a fake OpenAI/Flowise server, and the answer flow gets the description as context."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from django.core.files.storage import default_storage

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import AICall, Turn
from images.context import cannot_look_text
from images.models import ImageUpload
from images.tests.samples import image_bytes
from tests.e2e.client import answer_text, assert_gapless, widget_headers, ws_events
from tests.fakes._server import decode_data_url, describe_image
from tests.fakes.flowise import FakeFlowise
from tests.fakes.openai import FakeOpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAKES = {"openai": FakeOpenAI, "flowise": FakeFlowise}


@pytest.fixture(autouse=True)
def _delete_stored_files():
    # The stack writes under the default MEDIA_ROOT; deleting the rows deletes their files.
    yield
    for image in ImageUpload.objects.all():
        image.delete()


@pytest.fixture
def vision_server(request):
    with FAKES[getattr(request, "param", "openai")]() as server:
        yield server


@pytest.fixture
def answer_server(request):
    with FAKES[getattr(request, "param", "openai")]() as server:
        yield server


def endpoint_for(server, kind: str) -> AIEndpoint:
    if kind == "openai":
        return create_endpoint(
            kind=AIEndpoint.Kind.OPENAI,
            base_url=server.url + "/v1",
            read_timeout=5.0,
            total_timeout=20,
        )
    return create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE, base_url=server.url, read_timeout=5.0, total_timeout=20
    )


def photo_bot(answer_server, vision_server=None, *, kind: str = "openai", **chatbot):
    bot = create_chatbot(
        public_id="cellar", image_upload_enabled=True, with_main_flow=False, **chatbot
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint_for(answer_server, kind))
    if vision_server is not None:
        create_flow(
            chatbot=bot, name="vision", role="image", endpoint=endpoint_for(vision_server, kind)
        )
    return bot


def upload(base_url: str, chatbot_id: str, data: bytes, mime: str, **extra) -> dict:
    response = httpx.post(
        f"{base_url}/api/upload-image",
        json={
            "chatbot_id": chatbot_id,
            "image_data": {"name": "bottle", "data": base64.b64encode(data).decode(), "mime": mime},
            **extra,
        },
        headers=widget_headers(chatbot_id),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def stored_bytes(image_id: str) -> bytes:
    image = ImageUpload.objects.get(pk=image_id)
    with default_storage.open(image.storage_name) as handle:
        return handle.read()


def sent_images(kind: str, body: dict) -> list[bytes]:
    """The image bytes an upstream request carried (OpenAI image_url parts / Flowise uploads)."""
    if kind == "openai":
        parts = body["messages"][-1]["content"]
        if isinstance(parts, str):
            return []
        return [
            decode_data_url(p["image_url"]["url"]) for p in parts if p.get("type") == "image_url"
        ]
    return [decode_data_url(u["data"]) for u in body.get("uploads") or []]


def answer_context(kind: str, body: dict) -> str:
    """Where the answer flow's context travels: the system message, or the Flowise question."""
    if kind == "openai":
        return " ".join(m["content"] for m in body["messages"] if m["role"] == "system")
    return body["question"]


@pytest.mark.parametrize(
    ("kind", "vision_server", "answer_server"),
    [("openai", "openai", "openai"), ("flowise", "flowise", "flowise")],
    indirect=["vision_server", "answer_server"],
)
def test_the_description_of_a_photo_reaches_the_answer_flow(
    stack, kind, vision_server, answer_server
):
    photo_bot(answer_server, vision_server, kind=kind)
    reply = upload(
        stack.base_url,
        "cellar",
        image_bytes("JPEG", size=(64, 48)),
        "image/jpeg",
        message_text="Is this bottle damaged?",
    )
    events = asyncio.run(ws_events(reply))
    assert_gapless(events)
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed", events[-3:]
    stored = stored_bytes(reply["image_id"])
    seen_by_vision = describe_image(stored)  # what the fake "sees" in exactly these bytes

    [vision_request] = vision_server.requests
    assert sent_images(kind, vision_request.json) == [stored]  # the cleaned copy, no EXIF
    [answer_request] = answer_server.requests
    assert sent_images(kind, answer_request.json) == []  # the answer flow gets words, not pixels
    context = answer_context(kind, answer_request.json)
    assert "The customer sent an image. Description:" in context and seen_by_vision in context

    described = [
        e for e in events if e["event"] == "metadata" and "image_descriptions" in e["data"]
    ]
    assert len(described) == 1
    [entry] = described[0]["data"]["image_descriptions"]
    assert entry["image_id"] == reply["image_id"] and seen_by_vision in entry["description"]
    image = ImageUpload.objects.get(pk=reply["image_id"])
    assert image.description_status == "described" and seen_by_vision in image.description
    turn = Turn.objects.select_related("user_message").get(pk=reply["turn_id"])
    assert seen_by_vision in turn.user_message.metadata["images"][0]["description"]
    purposes = sorted(
        AICall.objects.filter(turn_id=reply["turn_id"]).values_list("purpose", flat=True)
    )
    assert purposes == ["answer", "image"]


def test_an_image_uploaded_first_is_described_when_a_websocket_message_refers_to_it(
    stack, vision_server, answer_server
):
    photo_bot(answer_server, vision_server)
    uploaded = upload(stack.base_url, "cellar", image_bytes("PNG"), "image/png")
    assert "turn_id" not in uploaded
    reply = {
        "websocket_url": f"{stack.ws_url}/ws/conversations/{uploaded['session_id']}/",
        "conversation_token": uploaded["conversation_token"],
        "turn_id": None,
    }
    message = {
        "type": "message",
        "message_text": "Which size is this tag?",
        "image_ids": [uploaded["image_id"]],
    }
    events = asyncio.run(ws_events(reply, send_first=message))
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed", events
    seen = describe_image(stored_bytes(uploaded["image_id"]))
    assert seen in answer_context("openai", answer_server.requests[-1].json)
    assert any("image_descriptions" in e["data"] for e in events if e["event"] == "metadata")


def test_a_failed_description_is_retried_before_the_answer(stack, vision_server, answer_server):
    photo_bot(answer_server, vision_server)
    # The client's own retries (UPSTREAM_MAX_RETRIES=2) use up three 503s; our second attempt wins.
    vision_server.configure(status=503, fail_times=3)
    reply = upload(
        stack.base_url, "cellar", image_bytes("GIF"), "image/gif", message_text="What is it?"
    )
    events = asyncio.run(ws_events(reply, timeout=40))
    assert events[-1]["data"]["status"] == "completed"
    assert len(vision_server.requests) == 4
    seen = describe_image(stored_bytes(reply["image_id"]))
    assert seen in answer_context("openai", answer_server.requests[-1].json)


def test_when_the_image_cannot_be_described_the_answer_still_comes(
    stack, vision_server, answer_server
):
    photo_bot(answer_server, vision_server)
    vision_server.configure(status=400)  # not worth retrying
    reply = upload(stack.base_url, "cellar", image_bytes("WEBP"), "image/webp", message_text="Look")
    events = asyncio.run(ws_events(reply, timeout=40))
    assert events[-1]["data"]["status"] == "completed"
    assert len(vision_server.requests) == 1
    assert "could not be looked at" in answer_context("openai", answer_server.requests[-1].json)
    [described] = [
        e for e in events if e["event"] == "metadata" and "image_descriptions" in e["data"]
    ]
    assert described["data"]["image_descriptions"][0]["description"] is None
    assert described["data"]["image_descriptions"][0]["error"] == "UPSTREAM_BAD_REQUEST"


def test_a_bot_without_an_image_flow_says_it_cannot_look(stack, answer_server):
    bot = photo_bot(answer_server, language="da", contact_email="hej@cellar.example")
    reply = upload(stack.base_url, "cellar", image_bytes("PNG"), "image/png", message_text="Se her")
    events = asyncio.run(ws_events(reply))
    assert events[-1]["data"]["status"] == "completed"
    from chatbots.selectors import chatbot_config_get

    expected = cannot_look_text(chatbot_config_get(public_id=bot.public_id), "da")
    assert answer_text(events) == expected and "hej@cellar.example" in expected
    assert answer_server.requests == []  # no flow was asked to pretend it saw the photo

"""Image work after the cheap checks (#18 item 3): credentials, conversation state and rate
limits (the image limit on every path that carries an image), then the header, then a bounded
decode. `image_data` on process-message and the WebSocket used to be decoded, resized and stored
before any check and without the image limit: on an ended conversation, and for a message then
refused with 429, whose image was stored anyway."""

from __future__ import annotations

import json
import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, connections

from conversations.access import conversation_token_issue
from conversations.models import Conversation
from conversations.services import conversation_end, conversation_start
from images.models import ImageUpload
from images.tests.conftest import b64, error_code, upload
from images.tests.samples import image_bytes, png_bomb
from images.validation import decode_count

pytestmark = pytest.mark.django_db


def damaged_png() -> bytes:
    """A PNG whose header is fine and whose pixels cannot be decoded: only a decode says so."""
    data = image_bytes("PNG", size=(40, 30))
    return data[:60] + b"\x00" * (len(data) - 60)


@pytest.fixture
def chat(bot):
    conversation = conversation_start(chatbot=bot)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)
    return conversation, {"Authorization": f"Bearer {token}"}


def send(client, conversation, headers, data: bytes | None, text: str = "Is this damaged?"):
    body = {"chatbot_id": "shop", "message_text": text, "session_id": str(conversation.pk)}
    if data is not None:
        body["image_data"] = {"name": "photo", "data": b64(data), "mime": "image/png"}
    return client.post(
        "/api/process-message", body, content_type="application/json", headers=headers
    )


def test_an_image_on_an_ended_conversation_is_neither_decoded_nor_stored(client, chat):
    conversation, headers = chat
    conversation_end(conversation=conversation)
    decoded = decode_count()

    response = send(client, conversation, headers, damaged_png())

    assert response.status_code == 409  # not 400 IMAGE_CORRUPT: nobody looked at the pixels
    assert error_code(response) == "CONVERSATION_CLOSED"
    assert decode_count() == decoded
    assert ImageUpload.objects.count() == 0


def test_upload_image_on_an_ended_conversation_decodes_nothing(client, chat):
    conversation, headers = chat
    conversation_end(conversation=conversation)
    body = {
        "chatbot_id": "shop",
        "session_id": str(conversation.pk),
        "image_data": {"name": "photo", "data": b64(damaged_png()), "mime": "image/png"},
    }
    decoded = decode_count()

    response = upload(client, body, **headers)

    assert response.status_code == 409 and error_code(response) == "CONVERSATION_CLOSED"
    assert decode_count() == decoded


def test_a_message_refused_with_429_stores_no_image(client, chat):
    conversation, headers = chat
    conversation.chatbot.message_rate_limit = 1
    conversation.chatbot.save(update_fields=["message_rate_limit"])
    assert send(client, conversation, headers, None, text="first").status_code == 200
    decoded = decode_count()

    response = send(client, conversation, headers, image_bytes("PNG"))

    assert response.status_code == 429
    assert decode_count() == decoded
    assert ImageUpload.objects.count() == 0


def test_the_image_limit_applies_to_images_sent_with_process_message(client, chat, settings):
    settings.IMAGE_UPLOAD_RATE_LIMIT = "2/minute"
    conversation, headers = chat
    first = send(client, conversation, headers, image_bytes("PNG", color=(1, 2, 3)))
    second = send(client, conversation, headers, image_bytes("PNG", color=(4, 5, 6)))
    decoded = decode_count()

    third = send(client, conversation, headers, image_bytes("PNG", color=(7, 8, 9)))

    assert first.status_code == second.status_code == 200
    assert third.status_code == 429 and error_code(third) == "RATE_LIMITED"
    assert decode_count() == decoded
    assert ImageUpload.objects.count() == 2
    # One limit for every path: the upload endpoint is out of images too.
    body = {
        "chatbot_id": "shop",
        "session_id": str(conversation.pk),
        "image_data": {"name": "p", "data": b64(image_bytes("PNG")), "mime": "image/png"},
    }
    assert upload(client, body, **headers).status_code == 429


def test_a_pixel_bomb_is_refused_from_its_header_without_a_decode(client, chat):
    conversation, headers = chat
    decoded = decode_count()

    response = send(client, conversation, headers, png_bomb())

    assert response.status_code == 400 and error_code(response) == "IMAGE_TOO_MANY_PIXELS"
    assert decode_count() == decoded
    assert ImageUpload.objects.count() == 0


def release_consumer_connections() -> None:
    """The consumer's database threads each hold a pooled connection to the test database,
    which could then not be dropped: each thread closes its own, then the pool closes."""
    from conversations import consumers

    executor = consumers._db_executor
    if executor is not None:
        threads = len(executor._threads)
        barrier = threading.Barrier(threads)

        def close_mine():
            barrier.wait(timeout=10)  # one task per thread
            connections.close_all()

        for future in [executor.submit(close_mine) for _ in range(threads)]:
            future.result(timeout=20)
    connection.close_pool()


@pytest.mark.django_db(transaction=True)
def test_the_image_limit_applies_on_the_websocket(bot, settings):
    from channels.testing import WebsocketCommunicator

    from conversations.consumers import ConversationConsumer

    settings.IMAGE_UPLOAD_RATE_LIMIT = "1/minute"
    conversation = conversation_start(chatbot=bot)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)

    def frame(color) -> dict:
        return {
            "type": "message",
            "message_text": "Is this damaged?",
            "image_data": {"name": "p", "data": b64(image_bytes("PNG", color=color)), "mime": ""},
        }

    async def talk() -> list[dict]:
        communicator = WebsocketCommunicator(
            ConversationConsumer.as_asgi(), f"/ws/conversations/{conversation.pk}/?token={token}"
        )
        communicator.scope["url_route"] = {"kwargs": {"session_id": str(conversation.pk)}}
        connected, _ = await communicator.connect()
        assert connected
        seen = [await communicator.receive_json_from(timeout=10)]  # ready
        for color in ((1, 1, 1), (2, 2, 2)):
            await communicator.send_to(text_data=json.dumps(frame(color)))
            while True:
                reply = await communicator.receive_json_from(timeout=10)
                if reply.get("type") in ("turn", "error"):
                    seen.append(reply)
                    break
        await communicator.disconnect()
        return seen

    try:
        ready, accepted, refused = async_to_sync(talk)()
    finally:
        release_consumer_connections()

    assert ready["type"] == "ready" and accepted["type"] == "turn"
    assert refused["type"] == "error" and refused["error"]["code"] == "RATE_LIMITED"
    assert ImageUpload.objects.count() == 1
    assert Conversation.objects.get(pk=conversation.pk).message_count == 1

"""POST /api/upload-image and GET /api/images/<id>: every refusal, every format, who may see what."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.utils import timezone
from PIL import Image

from chatbots.tests.factories import create_chatbot
from conversations.models import Conversation, Message, Turn
from images.api import upload_body_limit, upload_image
from images.models import ImageUpload
from images.tests.conftest import b64, error_code, upload, upload_new, widget_headers
from images.tests.samples import FORMATS, animated_gif, image_bytes, jpeg_with_gps, png_bomb

pytestmark = pytest.mark.django_db


def bearer(reply: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {reply['conversation_token']}"}


# --- success -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_stores_each_allowed_format_under_a_random_name(client, bot, fmt):
    response = upload_new(client, bot, image_bytes(fmt), FORMATS[fmt], name="my-home-address.x")
    assert response.status_code == 200, response.content
    body = response.json()
    image = ImageUpload.objects.get(pk=body["image_id"])
    assert image.mime == FORMATS[fmt] and (image.width, image.height) == (40, 30)
    assert str(image.conversation_id) == body["session_id"] and image.chatbot == bot
    assert "my-home-address" not in image.storage_name + image.thumbnail_name
    assert image.original_name == "my-home-address.x"
    with default_storage.open(image.storage_name) as handle:
        stored = handle.read()
    assert Image.open(io.BytesIO(stored)).format == fmt
    assert image.sha256 == hashlib.sha256(stored).hexdigest() and image.size == len(stored)
    assert body["image"]["url"] == f"/api/images/{image.id}"
    assert "turn_id" not in body  # no message: nothing to answer yet


def test_with_a_message_it_starts_a_turn_like_process_message(client, bot):
    response = upload_new(
        client, bot, image_bytes("JPEG"), "image/jpeg", message_text="Is it broken?"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    for field in (
        "success",
        "session_id",
        "streaming_session_id",
        "turn_id",
        "message_id",
        "streaming_url",
        "websocket_url",
        "conversation_token",
        "status",
        "image_id",
    ):
        assert field in body, field
    turn = Turn.objects.select_related("user_message").get(pk=body["turn_id"])
    assert turn.status == Turn.Status.PENDING and turn.user_message.content == "Is it broken?"
    assert [i["image_id"] for i in turn.user_message.metadata["images"]] == [body["image_id"]]
    assert body["streaming_url"].endswith(f"/api/stream-events/{turn.pk}")


def test_the_multipart_variant_takes_the_file_field(client, bot):
    response = client.post(
        "/api/upload-image",
        {
            "chatbot_id": "shop",
            "message_text": "See the label",
            "image": SimpleUploadedFile("label.png", image_bytes("PNG"), content_type="image/png"),
        },
        headers=widget_headers(bot),
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.metadata["images"][0]["mime"] == "image/png"


def test_the_multipart_variant_judges_the_content_not_the_part_type(client, bot):
    response = client.post(
        "/api/upload-image",
        {
            "chatbot_id": "shop",
            "image": SimpleUploadedFile("a.png", image_bytes("JPEG"), content_type="image/png"),
        },
        headers=widget_headers(bot),
    )
    assert response.status_code == 415 and error_code(response) == "IMAGE_TYPE_MISMATCH"


def test_an_existing_conversation_needs_its_token_in_the_header_or_the_body(client, bot):
    first = upload_new(client, bot, image_bytes("PNG")).json()
    body = {
        "chatbot_id": "shop",
        "session_id": first["session_id"],
        "image_data": {"name": "b.gif", "data": b64(image_bytes("GIF")), "mime": "image/gif"},
    }
    assert upload(client, body).status_code == 404
    wrong = upload(client, body, Authorization="Bearer not-a-token")
    assert wrong.status_code == 404 and error_code(wrong) == "CONVERSATION_NOT_FOUND"
    ok = upload(client, body, **bearer(first))
    assert ok.status_code == 200 and ok.json()["session_id"] == first["session_id"]
    in_body = upload(
        client,
        {
            **body,
            "image_data": {"data": b64(image_bytes("WEBP"))},
            "conversation_token": first["conversation_token"],
        },
    )
    assert in_body.status_code == 200
    assert ImageUpload.objects.filter(conversation_id=first["session_id"]).count() == 3


def test_another_visitors_token_cannot_add_to_my_conversation(client, bot):
    mine = upload_new(client, bot, image_bytes("PNG")).json()
    theirs = upload_new(client, bot, image_bytes("JPEG")).json()
    body = {
        "chatbot_id": "shop",
        "session_id": mine["session_id"],
        "image_data": {"data": b64(image_bytes("GIF"))},
    }
    response = upload(client, body, **bearer(theirs))
    assert response.status_code == 404 and error_code(response) == "CONVERSATION_NOT_FOUND"


def test_the_same_photo_twice_in_a_conversation_is_one_image(client, bot):
    first = upload_new(client, bot, image_bytes("PNG")).json()
    body = {
        "chatbot_id": "shop",
        "session_id": first["session_id"],
        "image_data": {"data": b64(image_bytes("PNG"))},
    }
    again = upload(client, body, **bearer(first)).json()
    assert again["image_id"] == first["image_id"]
    assert ImageUpload.objects.count() == 1


def test_data_urls_are_accepted(client, bot):
    data = "data:image/png;base64," + b64(image_bytes("PNG"))
    response = upload(
        client, {"chatbot_id": "shop", "image_data": {"data": data}}, **widget_headers(bot)
    )
    assert response.status_code == 200, response.content


def test_exif_with_gps_never_reaches_storage(client, bot):
    response = upload_new(client, bot, jpeg_with_gps(size=(60, 40)), "image/jpeg")
    image = ImageUpload.objects.get(pk=response.json()["image_id"])
    with default_storage.open(image.storage_name) as handle:
        stored = handle.read()
    assert not Image.open(io.BytesIO(stored)).getexif()
    assert b"Exif" not in stored and b"PhoneMaker" not in stored
    assert (image.width, image.height) == (40, 60)


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime", "status", "code"),
    [
        (image_bytes("JPEG"), "image/png", 415, "IMAGE_TYPE_MISMATCH"),
        (b"My bottle arrived broken, see attached.", "image/jpeg", 415, "IMAGE_TYPE_NOT_ALLOWED"),
        (image_bytes("PNG")[:-30], "image/png", 400, "IMAGE_CORRUPT"),
        (png_bomb(20000, 20000), "image/png", 400, "IMAGE_TOO_MANY_PIXELS"),
        (b"", "image/png", 400, "IMAGE_MISSING"),
    ],
    ids=["declared-png-but-jpeg", "text-renamed-jpg", "truncated-png", "png-bomb", "empty"],
)
def test_it_refuses_bad_images_with_a_stable_code(client, bot, data, mime, status, code):
    response = upload_new(client, bot, data, mime, name="photo.jpg")
    assert response.status_code == status, response.content
    assert error_code(response) == code
    # Nothing is left behind by a refused upload: no conversation, no row, no file.
    assert not Conversation.objects.exists() and not ImageUpload.objects.exists()
    assert not default_storage.exists("images")


def test_it_refuses_a_gif_with_too_many_frames(client, bot, settings):
    settings.IMAGE_MAX_FRAMES = 10
    response = upload_new(client, bot, animated_gif(11), "image/gif")
    assert response.status_code == 400 and error_code(response) == "IMAGE_TOO_MANY_FRAMES"


def test_it_refuses_invalid_base64(client, bot):
    body = {
        "chatbot_id": "shop",
        "image_data": {"name": "a.png", "data": "%%%not*base64%%%", "mime": "image/png"},
    }
    response = upload(client, body, **widget_headers(bot))
    assert response.status_code == 400 and error_code(response) == "IMAGE_INVALID_BASE64"


def test_it_refuses_an_image_over_the_size_limit(client, bot, settings):
    data = image_bytes("PNG", size=(64, 64))
    settings.IMAGE_MAX_BYTES = len(data) - 1
    response = upload_new(client, bot, data, "image/png")
    assert response.status_code == 413 and error_code(response) == "IMAGE_TOO_LARGE"
    multipart = client.post(
        "/api/upload-image",
        {
            "chatbot_id": "shop",
            "image": SimpleUploadedFile("a.png", data, content_type="image/png"),
        },
        headers=widget_headers(bot),
    )
    assert multipart.status_code == 413 and error_code(multipart) == "IMAGE_TOO_LARGE"


class _BodyMustNotBeRead(io.RawIOBase):
    reads = 0

    def read(self, *args):
        type(self).reads += 1
        raise AssertionError("the body was read")

    readline = read


def test_an_oversized_content_length_is_refused_without_reading_the_body(bot):
    request = RequestFactory().generic(
        "POST",
        "/api/upload-image",
        content_type="application/json",
        **{"CONTENT_LENGTH": str(upload_body_limit() + 1), "wsgi.input": _BodyMustNotBeRead()},
    )
    response = upload_image(request)
    assert response.status_code == 413
    assert response.data["error"]["code"] == "IMAGE_TOO_LARGE"
    assert _BodyMustNotBeRead.reads == 0


def test_a_bot_with_images_disabled_refuses_with_403(client):
    closed = create_chatbot(public_id="closed", image_upload_enabled=False)
    response = upload_new(client, closed, image_bytes("PNG"), "image/png")
    assert response.status_code == 403 and error_code(response) == "IMAGES_DISABLED"
    assert not Conversation.objects.exists()


def test_a_request_without_an_image_is_refused(client, bot):
    response = upload(client, {"chatbot_id": "shop", "message_text": "hi"}, **widget_headers(bot))
    assert response.status_code == 400 and error_code(response) == "IMAGE_MISSING"


def test_a_conversation_holds_a_bounded_number_of_images(client, bot, settings):
    settings.IMAGE_MAX_PER_CONVERSATION = 1
    first = upload_new(client, bot, image_bytes("PNG")).json()
    body = {
        "chatbot_id": "shop",
        "session_id": first["session_id"],
        "image_data": {"data": b64(image_bytes("GIF"))},
    }
    response = upload(client, body, **bearer(first))
    assert response.status_code == 409 and error_code(response) == "IMAGE_LIMIT_REACHED"


# --- serving images back -----------------------------------------------------------------------


def test_the_token_holder_gets_the_image_with_safe_headers(client, bot):
    reply = upload_new(client, bot, image_bytes("WEBP"), "image/webp").json()
    response = client.get(f"/api/images/{reply['image_id']}", headers=bearer(reply))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert response["Cache-Control"].startswith("private")
    image = ImageUpload.objects.get(pk=reply["image_id"])
    with default_storage.open(image.storage_name) as handle:
        assert b"".join(response.streaming_content) == handle.read()


def test_the_thumbnail_is_small_and_served_the_same_way(client, bot):
    reply = upload_new(client, bot, image_bytes("PNG", size=(800, 600)), "image/png").json()
    response = client.get(
        f"/api/images/{reply['image_id']}?thumbnail=1&token={reply['conversation_token']}",
        headers={"Accept": "image/avif,image/webp,*/*"},
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert max(thumb.size) <= 256


def test_an_img_tag_accept_header_still_gets_the_image(client, bot):
    reply = upload_new(client, bot, image_bytes("PNG"), "image/png").json()
    response = client.get(
        f"/api/images/{reply['image_id']}", headers={**bearer(reply), "Accept": "image/png"}
    )
    assert response.status_code == 200


def test_another_visitor_cannot_fetch_my_image(client, bot):
    mine = upload_new(client, bot, image_bytes("PNG")).json()
    theirs = upload_new(client, bot, image_bytes("JPEG")).json()
    response = client.get(f"/api/images/{mine['image_id']}", headers=bearer(theirs))
    assert response.status_code == 404 and error_code(response) == "IMAGE_NOT_FOUND"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer forged"}], ids=["none", "forged"]
)
def test_without_a_valid_token_an_image_does_not_exist(client, bot, headers):
    reply = upload_new(client, bot, image_bytes("PNG")).json()
    response = client.get(f"/api/images/{reply['image_id']}", headers=headers)
    assert response.status_code == 404 and error_code(response) == "IMAGE_NOT_FOUND"
    unknown = client.get(f"/api/images/{uuid.uuid4()}", headers=bearer(reply))
    assert unknown.status_code == 404


# --- attachments of process-message ----------------------------------------------------------


def test_process_message_references_an_uploaded_image_by_id(client, bot):
    reply = upload_new(client, bot, image_bytes("PNG")).json()
    response = client.post(
        "/api/process-message",
        {
            "chatbot_id": "shop",
            "session_id": reply["session_id"],
            "message_text": "What about this one?",
            "image_ids": [reply["image_id"]],
        },
        content_type="application/json",
        headers=bearer(reply),
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.metadata["images"][0]["image_id"] == reply["image_id"]


def test_process_message_cannot_reference_another_conversations_image(client, bot):
    mine = upload_new(client, bot, image_bytes("PNG")).json()
    theirs = upload_new(client, bot, image_bytes("JPEG")).json()
    response = client.post(
        "/api/process-message",
        {
            "chatbot_id": "shop",
            "session_id": theirs["session_id"],
            "message_text": "Look",
            "image_ids": [mine["image_id"]],
        },
        content_type="application/json",
        headers=bearer(theirs),
    )
    assert response.status_code == 404 and error_code(response) == "IMAGE_NOT_FOUND"


def test_process_message_stores_an_inline_image_data(client, bot):
    response = client.post(
        "/api/process-message",
        {
            "chatbot_id": "shop",
            "message_text": "Here",
            "image_data": {"name": "x.gif", "data": b64(image_bytes("GIF")), "mime": "image/gif"},
        },
        content_type="application/json",
        headers=widget_headers(bot),
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    image = ImageUpload.objects.get(pk=message.metadata["images"][0]["image_id"])
    assert image.mime == "image/gif" and str(image.conversation_id) == response.json()["session_id"]


def test_process_message_refuses_inline_images_when_the_bot_takes_none(client):
    closed = create_chatbot(public_id="closed", image_upload_enabled=False)
    response = client.post(
        "/api/process-message",
        {
            "chatbot_id": "closed",
            "message_text": "x",
            "image_data": {"data": b64(image_bytes("PNG"))},
        },
        content_type="application/json",
        headers=widget_headers(closed),
    )
    assert response.status_code == 403 and error_code(response) == "IMAGES_DISABLED"


def test_an_ended_conversation_takes_no_more_photos(client, bot):
    first = upload_new(client, bot, image_bytes("PNG")).json()
    Conversation.objects.filter(pk=first["session_id"]).update(status=Conversation.Status.ENDED)
    body = {
        "chatbot_id": "shop",
        "session_id": first["session_id"],
        "image_data": {"data": b64(image_bytes("GIF"))},
    }
    response = upload(client, body, **bearer(first))
    assert response.status_code == 409 and error_code(response) == "CONVERSATION_CLOSED"
    assert ImageUpload.objects.count() == 1


def test_a_refused_message_takes_its_new_image_and_conversation_with_it(client, bot, settings):
    settings.MESSAGE_MAX_CHARS = 10
    response = upload_new(client, bot, image_bytes("PNG"), message_text="x" * 11)
    assert response.status_code == 400
    assert not Conversation.objects.exists() and not ImageUpload.objects.exists()
    folder = timezone.now().strftime("images/%Y/%m/%d")
    assert not default_storage.exists(folder) or default_storage.listdir(folder)[1] == []

"""REST endpoints of images: POST /api/upload-image and GET /api/images/<id> (token holders only)."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, parser_classes
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from chatbots.models import Chatbot
from config.client_address import client_address_of_request
from config.errors import ApiError, ErrorCode
from config.parsers import SafeJSONParser
from config.ratelimit import ip_of, rate_limit_hit
from config.schema import ERROR_RESPONSES
from conversations import services as conversation_services
from conversations.access import (
    check_browser_origin,
    conversation_or_chatbot,
    conversation_token_check,
    conversation_token_issue,
    token_from_request,
)
from conversations.models import Conversation, Turn
from conversations.turn_links import turn_follow_fields
from images import selectors, services
from images.error_codes import ImageErrorCode
from images.models import ImageUpload
from images.validation import CleanImage, base64_limit, refuse, too_large

# Room for the other fields, JSON quoting and multipart boundaries around the image itself.
BODY_OVERHEAD_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024


def upload_body_limit() -> int:
    """The largest request body an IMAGE_MAX_BYTES image can arrive in (base64 is 4/3)."""
    return base64_limit(settings.IMAGE_MAX_BYTES) + BODY_OVERHEAD_BYTES


class ImageDataSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, help_text="e.g. bottle.jpg")
    data = serializers.CharField(help_text="The file as base64, or a data:image/…;base64, URL.")
    mime = serializers.CharField(
        required=False, allow_blank=True, help_text="image/jpeg, image/png, image/gif, image/webp"
    )


class UploadImageSerializer(serializers.Serializer):
    chatbot_id = serializers.CharField(max_length=64)
    image_data = serializers.JSONField(
        required=False, allow_null=True, help_text="JSON variant: {name, data (base64), mime}."
    )
    image = serializers.FileField(
        required=False,
        allow_empty_file=True,  # an empty file is IMAGE_CORRUPT, like any other bad image
        help_text="Multipart variant: the file (form field `image`).",
    )
    mime = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Multipart: declared type."
    )
    message_text = serializers.CharField(
        required=False, allow_blank=True, max_length=100_000, trim_whitespace=True, default=""
    )
    session_id = serializers.UUIDField(required=False, allow_null=True)
    conversation_token = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    widget_key = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Or the X-Widget-Key header."
    )
    user_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    configuration = serializers.JSONField(
        required=False, help_text="Ignored: configuration comes from the admin, never the client."
    )


class _ImageRequestDoc(serializers.Serializer):
    # The documented JSON body (seed 000): image_data as an object, not free JSON.
    chatbot_id = serializers.CharField()
    image_data = ImageDataSerializer()
    message_text = serializers.CharField(required=False)
    session_id = serializers.UUIDField(required=False)
    conversation_token = serializers.CharField(required=False)
    widget_key = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)


class _ImageMultipartDoc(serializers.Serializer):
    chatbot_id = serializers.CharField()
    image = serializers.FileField()
    mime = serializers.CharField(required=False)
    message_text = serializers.CharField(required=False)
    session_id = serializers.UUIDField(required=False)
    conversation_token = serializers.CharField(required=False)
    widget_key = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)


class ImageInfoSerializer(serializers.Serializer):
    image_id = serializers.UUIDField()
    mime = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    size = serializers.IntegerField()
    url = serializers.CharField(help_text="GET it with the conversation token.")
    thumbnail_url = serializers.CharField()


class UploadImageResponse(serializers.Serializer):
    success = serializers.BooleanField()
    image_id = serializers.UUIDField()
    image = ImageInfoSerializer()
    session_id = serializers.UUIDField()
    conversation_token = serializers.CharField()
    streaming_session_id = serializers.UUIDField(required=False, help_text="With message_text.")
    turn_id = serializers.UUIDField(required=False)
    message_id = serializers.UUIDField(required=False)
    flow_type = serializers.CharField(required=False)
    streaming_url = serializers.CharField(required=False)
    websocket_url = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


def _body_size_check(request: Request) -> None:
    """413 from Content-Length alone, before anything reads (or parses) the body."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError as exc:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "Content-Length is not a number.") from exc
    if length > upload_body_limit():
        raise too_large(settings.IMAGE_MAX_BYTES)


def _read_upload(upload) -> bytes:
    """A multipart file's bytes, refusing anything over IMAGE_MAX_BYTES without reading it all."""
    max_bytes = settings.IMAGE_MAX_BYTES
    if upload.size is not None and upload.size > max_bytes:
        raise too_large(max_bytes)
    chunks, total = [], 0
    for chunk in upload.chunks(READ_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


@extend_schema(
    operation_id="upload_image",
    summary="Send a photo; with message_text it also starts the answer like process-message.",
    description=(
        "JSON (`image_data` {name, data (base64), mime}) or multipart (`image` file). "
        "The image is judged by its content: JPEG, PNG, GIF or WebP, at most IMAGE_MAX_BYTES. "
        "See docs/images.md for every refusal code."
    ),
    request={
        "application/json": _ImageRequestDoc,
        "multipart/form-data": _ImageMultipartDoc,
    },
    parameters=[
        OpenApiParameter(
            "Idempotency-Key",
            location=OpenApiParameter.HEADER,
            required=False,
            description="With message_text: a retry with the same key returns the original turn.",
        )
    ],
    responses={
        200: UploadImageResponse,
        **{s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404, 409, 413, 415, 429)},
    },
)
@api_view(["POST"])
@parser_classes([SafeJSONParser, MultiPartParser])
def upload_image(request: Request) -> Response:
    _body_size_check(request)
    serializer = UploadImageSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    conversation, chatbot = conversation_or_chatbot(request, data)
    services.images_enabled_check(chatbot=chatbot)
    rate_limit_hit(scope="image-upload", key=ip_of(request), limit=settings.IMAGE_UPLOAD_RATE_LIMIT)
    # The cheap checks before a byte is decoded: an ended conversation, a new one over its limit.
    if conversation is not None:
        services.conversation_takes_images_check(conversation=conversation)
    else:
        conversation_services.conversation_create_limit_hit(key=ip_of(request))
    raw, declared, name = _upload_bytes(chatbot, data)
    # Every refusal happens here, before a conversation or a file exists.
    clean = services.image_prepare(chatbot=chatbot, data=raw, declared_mimes=declared)
    conversation, image, turn = _image_store(
        request, conversation=conversation, chatbot=chatbot, data=data, clean=clean, name=name
    )
    return Response(_upload_body(request, conversation=conversation, image=image, turn=turn))


def _upload_bytes(chatbot: Chatbot, data: dict) -> tuple[bytes, tuple[str, ...], str]:
    """(bytes, the types the client declared, file name) from the multipart file or the JSON
    `image_data`; 400 IMAGE_MISSING when neither came."""
    upload = data.get("image")
    if upload is not None:
        raw = _read_upload(upload)
        return raw, (data.get("mime", ""), upload.content_type or ""), upload.name or ""
    if data.get("image_data"):
        return services.image_data_decode(chatbot=chatbot, image_data=data["image_data"])
    raise refuse(
        ImageErrorCode.IMAGE_MISSING,
        "Send the image as `image_data` (JSON) or as the `image` file (multipart).",
    )


def _image_store(
    request: Request,
    *,
    conversation: Conversation | None,
    chatbot: Chatbot,
    data: dict,
    clean: CleanImage,
    name: str,
) -> tuple[Conversation, ImageUpload, Turn | None]:
    """(conversation, image, turn or None) in one transaction: the conversation if new, the
    image, and with message_text the customer's message. If anything fails the rows roll back
    and the files written for them are deleted."""
    text = data.get("message_text") or ""
    image = created = turn = None
    try:
        with transaction.atomic():
            if conversation is None:
                conversation = conversation_services.conversation_start(
                    chatbot=chatbot, user_id=data.get("user_id", "")
                )
            image, created = services.image_save(
                conversation=conversation, clean=clean, original_name=name
            )
            if text:
                turn, _new = conversation_services.message_submit(
                    conversation=conversation,
                    text=text,
                    idempotency_key=request.headers.get("Idempotency-Key", "")[:200],
                    client_ip=client_address_of_request(request),
                    metadata={"images": [services.image_message_entry(image)]},
                )
    except BaseException:
        # The rows rolled back; the files written for them must go too.
        if image is not None and created:
            services.image_files_delete(names=[image.storage_name, image.thumbnail_name])
        raise
    return conversation, image, turn


def _upload_body(
    request: Request, *, conversation: Conversation, image: ImageUpload, turn: Turn | None
) -> dict:
    """The answer: the image and the conversation token, and with a message the same turn
    fields process-message returns."""
    body = {
        "success": True,
        "image_id": str(image.id),
        "image": services.image_message_entry(image),
        "session_id": str(conversation.pk),
        "conversation_token": conversation_token_issue(
            conversation_id=conversation.pk, chatbot_id=conversation.chatbot_id
        ),
    }
    if turn is not None:
        body.update(turn_follow_fields(request, conversation=conversation, turn=turn))
        body["status"] = turn.status
    return body


def _not_found() -> ApiError:
    return refuse(ImageErrorCode.IMAGE_NOT_FOUND, "No image with this id for the token given.")


class _AnyAccept(BaseContentNegotiation):
    """An <img> asks for image/*; errors still go out as the JSON envelope."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _any_accept(func):
    func.content_negotiation_class = _AnyAccept
    return func


@extend_schema(
    operation_id="image_get",
    summary="An image of the caller's conversation (or its thumbnail); needs the token.",
    parameters=[
        OpenApiParameter("thumbnail", bool, description="The small preview instead."),
        OpenApiParameter(
            "token", str, description="The conversation token, where a header cannot be sent."
        ),
    ],
    responses={
        (200, "image/*"): OpenApiResponse(description="The image bytes."),
        404: ERROR_RESPONSES[404],
    },
)
@api_view(["GET"])
@_any_accept
def image_get(request: Request, image_id) -> FileResponse:
    grant = conversation_token_check(token_from_request(request))
    image = selectors.image_for_grant(grant=grant, image_id=image_id)
    if image is None:
        raise _not_found()
    check_browser_origin(request, image.chatbot)
    thumbnail = request.GET.get("thumbnail", "").lower() in ("1", "true", "yes")
    name = image.thumbnail_name if thumbnail else image.storage_name
    mime = image.thumbnail_mime if thumbnail else image.mime
    if not name:
        raise _not_found()
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise _not_found() from exc
    extension = name.rsplit(".", 1)[-1]
    response = FileResponse(
        handle, content_type=mime, filename=f"image-{image.id}.{extension}", as_attachment=False
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Only the token holder's own browser may keep it; shared caches never.
    response["Cache-Control"] = "private, max-age=3600"
    return response

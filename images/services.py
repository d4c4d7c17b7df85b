"""Use cases of images: store an upload, attach images to a message, record descriptions, retention.

Files are written through Django's storage API (`default_storage`: the filesystem under
MEDIA_ROOT, or an S3-compatible bucket; docs/images.md) under random names. A file is deleted
only after the transaction that deleted its row commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chatbots.models import Chatbot
from config.errors import ApiError, ErrorCode
from conversations.errors import ConversationClosed
from conversations.models import Conversation, Message
from images.error_codes import ImageErrorCode
from images.models import ImageUpload
from images.validation import CleanImage, decode_base64, image_validate, refuse

logger = logging.getLogger(__name__)

# The process-message serializer accepts at most this many `image_ids`.
MAX_IMAGES_PER_MESSAGE = 4
STORAGE_PREFIX = "images"
THUMBNAIL_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}
DESCRIPTION_MAX_CHARS = 4000


def images_enabled_check(*, chatbot: Chatbot) -> None:
    if not chatbot.image_upload_enabled:
        raise refuse(ImageErrorCode.IMAGES_DISABLED, "This chatbot does not accept images.")


def _storage_base(now: dt.datetime) -> str:
    # Date folders keep directories small and let the orphan sweep look at recent days only;
    # the file name is random and says nothing about the customer or their file.
    return f"{STORAGE_PREFIX}/{now:%Y/%m/%d}/{secrets.token_hex(16)}"


def image_files_delete(*, names: Iterable[str]) -> None:
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not delete stored image file %s", name, exc_info=True)


def image_prepare(
    *, chatbot: Chatbot, data: bytes, declared_mimes: tuple[str, ...] = ()
) -> CleanImage:
    """Everything that can refuse an upload without touching storage or the database."""
    images_enabled_check(chatbot=chatbot)
    return image_validate(data, declared_mimes=declared_mimes)


def image_save(
    *, conversation: Conversation, clean: CleanImage, original_name: str = ""
) -> tuple[ImageUpload, bool]:
    """Store a validated image for a conversation. Returns (image, created): the same photo sent
    twice in one conversation is one image (and one description)."""
    _open_check(conversation.status)
    existing = ImageUpload.objects.filter(conversation=conversation, sha256=clean.sha256).first()
    if existing is not None:
        return existing, False
    _limit_check(conversation)
    base = _storage_base(timezone.now())
    names: list[str] = []
    try:
        names.append(default_storage.save(base + clean.extension, ContentFile(clean.data)))
        thumb_ext = THUMBNAIL_EXTENSIONS[clean.thumbnail_mime]
        names.append(
            default_storage.save(base + "_thumb" + thumb_ext, ContentFile(clean.thumbnail))
        )
        with transaction.atomic():
            # Lock the conversation: two parallel uploads must not both pass the limit check,
            # nor store the same photo twice.
            locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
            _open_check(locked.status)
            existing = ImageUpload.objects.filter(
                conversation=conversation, sha256=clean.sha256
            ).first()
            if existing is not None:
                transaction.on_commit(lambda: image_files_delete(names=names))
                return existing, False
            _limit_check(conversation)
            image = ImageUpload.objects.create(
                conversation=conversation,
                chatbot_id=conversation.chatbot_id,
                mime=clean.mime,
                size=len(clean.data),
                received_size=clean.received_bytes,
                width=clean.width,
                height=clean.height,
                frames=clean.frames,
                sha256=clean.sha256,
                storage_name=names[0],
                thumbnail_name=names[1],
                thumbnail_mime=clean.thumbnail_mime,
                original_name=(original_name or "")[:200],
            )
            return image, True
    except BaseException:
        image_files_delete(names=names)
        raise


def image_store(
    *,
    conversation: Conversation,
    data: bytes,
    declared_mimes: tuple[str, ...] = (),
    original_name: str = "",
) -> ImageUpload:
    """Validate, clean and store one image for a conversation."""
    clean = image_prepare(chatbot=conversation.chatbot, data=data, declared_mimes=declared_mimes)
    image, _created = image_save(
        conversation=conversation, clean=clean, original_name=original_name
    )
    return image


def conversation_takes_images_check(*, conversation: Conversation) -> None:
    """Before decoding: an ended conversation or one at its image limit takes no image."""
    _open_check(conversation.status)
    _limit_check(conversation)


def _open_check(status: str) -> None:
    # A resolved conversation takes photos (the next message reopens it); an ended one does not.
    if status == Conversation.Status.ENDED:
        raise ConversationClosed("This conversation has ended; start a new one.")


def _limit_check(conversation: Conversation) -> None:
    limit = settings.IMAGE_MAX_PER_CONVERSATION
    if ImageUpload.objects.filter(conversation=conversation).count() >= limit:
        raise refuse(
            ImageErrorCode.IMAGE_LIMIT_REACHED,
            f"A conversation can hold at most {limit} images; start a new conversation.",
            max_images=limit,
        )


def image_data_decode(*, chatbot: Chatbot, image_data: Any) -> tuple[bytes, tuple[str, ...], str]:
    """The seed's `image_data` object ({"name", "data" (base64 or a data URL), "mime"}) as
    (bytes, declared types, file name)."""
    if not isinstance(image_data, dict):
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "`image_data` must be an object with `name`, `data` (base64) and `mime`.",
        )
    # Refuse a closed door before decoding megabytes of base64.
    images_enabled_check(chatbot=chatbot)
    mime = image_data.get("mime") or ""
    name = image_data.get("name") or ""
    if not isinstance(mime, str) or not isinstance(name, str):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`name` and `mime` must be strings.")
    data, url_mime = decode_base64(image_data.get("data"))
    return data, (mime, url_mime), name


def image_store_base64(*, conversation: Conversation, image_data: Any) -> ImageUpload:
    data, declared, name = image_data_decode(chatbot=conversation.chatbot, image_data=image_data)
    return image_store(
        conversation=conversation, data=data, declared_mimes=declared, original_name=name
    )


def image_message_entry(image: ImageUpload) -> dict[str, Any]:
    """What a user message's metadata says about one image (also shown in history)."""
    return {
        "image_id": str(image.id),
        "mime": image.mime,
        "width": image.width,
        "height": image.height,
        "size": image.size,
        "url": image.url_path,
        "thumbnail_url": image.thumbnail_path,
    }


# --- attachment handlers (conversations.hooks) ---------------------------------------------------


def attachment_image_ids(conversation: Conversation, value: Any) -> dict[str, Any]:
    """`image_ids`: images uploaded before, which must belong to this conversation."""
    if isinstance(value, str | uuid.UUID):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`image_ids` must be a list of image ids.")
    if len(value) > MAX_IMAGES_PER_MESSAGE:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"A message can carry at most {MAX_IMAGES_PER_MESSAGE} images.",
        )
    ids: list[uuid.UUID] = []
    for item in value:
        try:
            image_id = item if isinstance(item, uuid.UUID) else uuid.UUID(str(item))
        except ValueError as exc:
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`image_ids` must be image ids.") from exc
        if image_id not in ids:
            ids.append(image_id)
    images_enabled_check(chatbot=conversation.chatbot)
    found = {
        img.id: img for img in ImageUpload.objects.filter(conversation=conversation, pk__in=ids)
    }
    if len(found) != len(ids):
        raise refuse(ImageErrorCode.IMAGE_NOT_FOUND, "No image with this id in this conversation.")
    return {"images": [image_message_entry(found[i]) for i in ids]}


def attachment_image_data(conversation: Conversation, value: Any) -> dict[str, Any]:
    """`image_data`: an image sent with the message itself; validated and stored here."""
    image = image_store_base64(conversation=conversation, image_data=value)
    return {"images": [image_message_entry(image)]}


# --- descriptions --------------------------------------------------------------------------------


def image_descriptions_record(*, turn_id: str, results: list[dict[str, Any]]) -> bool:
    """Store descriptions on the images and on the turn's user message.

    `results`: [{"image_id", "description" (or None), "error" (or None)}]. Returns False when
    the message already had them (the provider ran a second time in the same turn, as it does
    when a parallel router picks another flow), so the caller does not announce them twice.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock the message row: other providers may merge their own metadata concurrently.
        message = Message.objects.select_for_update().filter(turn_asked__pk=turn_id).first()
        for result in results:
            described = bool(result.get("description"))
            ImageUpload.objects.filter(pk=result["image_id"]).update(
                description=(result.get("description") or "")[:DESCRIPTION_MAX_CHARS],
                description_status=(
                    ImageUpload.DescriptionStatus.DESCRIBED
                    if described
                    else ImageUpload.DescriptionStatus.FAILED
                ),
                description_error="" if described else (result.get("error") or "")[:50],
                described_at=now,
            )
        if message is None or "image_descriptions" in message.metadata:
            return False
        by_id = {r["image_id"]: r for r in results}
        metadata = dict(message.metadata)
        metadata["images"] = [
            {**entry, "description": (by_id.get(entry.get("image_id")) or {}).get("description")}
            for entry in metadata.get("images") or []
            if isinstance(entry, dict)
        ]
        metadata["image_descriptions"] = [
            {
                "image_id": r["image_id"],
                "description": r.get("description"),
                "thumbnail_url": f"/api/images/{r['image_id']}?thumbnail=1",
                **({"error": r["error"]} if r.get("error") else {}),
            }
            for r in results
        ]
        message.metadata = metadata
        message.save(update_fields=["metadata"])
    return True


# --- retention -------------------------------------------------------------------------------------


def images_delete(*, image_ids: Iterable[uuid.UUID]) -> int:
    """Delete images by id; their files go after commit (images.signals)."""
    deleted, _ = ImageUpload.objects.filter(pk__in=list(image_ids)).delete()
    return deleted


def images_retention_run(*, now: dt.datetime | None = None, batch: int = 500) -> dict[str, int]:
    """The maintenance job: expired images (IMAGE_RETENTION_DAYS) and orphaned files.

    Images of deleted conversations need nothing here: the rows cascade with the conversation
    and their files are deleted by the post_delete handler.
    """
    now = now or timezone.now()
    expired = 0
    days = settings.IMAGE_RETENTION_DAYS
    if days > 0:
        cutoff = now - dt.timedelta(days=days)
        while True:
            ids = list(
                ImageUpload.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                    :batch
                ]
            )
            if not ids:
                break
            with transaction.atomic():
                expired += images_delete(image_ids=ids)
    return {"expired": expired, "orphan_files": image_orphan_files_purge(now=now)}


def image_orphan_files_purge(
    *, now: dt.datetime | None = None, days: int = 7, min_age: dt.timedelta | None = None
) -> int:
    """Delete stored files of recent days that no row refers to (a crash between the file
    write and the row insert, or a deletion whose after-commit cleanup never ran)."""
    now = now or timezone.now()
    min_age = min_age if min_age is not None else dt.timedelta(hours=1)
    purged = 0
    for offset in range(days + 1):
        folder = f"{STORAGE_PREFIX}/{now - dt.timedelta(days=offset):%Y/%m/%d}"
        try:
            _dirs, files = default_storage.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        names = [f"{folder}/{f}" for f in files]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            known = set(
                ImageUpload.objects.filter(
                    Q(storage_name__in=chunk) | Q(thumbnail_name__in=chunk)
                ).values_list("storage_name", "thumbnail_name")
            )
            referenced = {name for pair in known for name in pair}
            for name in chunk:
                if name in referenced:
                    continue
                try:
                    modified = default_storage.get_modified_time(name)
                except (FileNotFoundError, NotImplementedError):
                    continue
                # A file written moments ago may be waiting for its row's transaction.
                if now - modified < min_age:
                    continue
                image_files_delete(names=[name])
                purged += 1
    return purged

"""What an uploaded image must be before we keep it, and the clean copy we keep instead.

An upload is judged by its bytes, never by the type or name the client declared: the magic
bytes must say JPEG, PNG, GIF or WebP, Pillow must open it as that same format, and a full
decode must succeed within the size, pixel and frame limits. What we store and forward is a
re-encoded copy with no EXIF/XMP/comments (GPS!), orientation applied, and only the first frame
of an animation (vision models take stills).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageOps

from config.errors import ApiError, ErrorCode
from images.error_codes import ImageErrorCode

# Pillow format name -> (mime, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "GIF": ("image/gif", ".gif"),
    "WEBP": ("image/webp", ".webp"),
}
ALLOWED_MIMES = {mime for mime, _ext in FORMATS.values()}
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
# Declared types that say nothing: the content decides.
UNDECLARED = {"", "application/octet-stream", "binary/octet-stream"}

JPEG_QUALITY = 90
# Full decodes (verify, load, re-encode) running at once in one process. One image within
# IMAGE_MAX_PIXELS costs up to seconds of CPU; without a bound, a handful of parallel uploads
# took every request thread of the web process. A request waits at most DECODE_WAIT_SECONDS for
# a slot, then gets 503 with Retry-After.
DECODE_SLOTS = 2
DECODE_WAIT_SECONDS = 10.0
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
_DATA_URL = re.compile(r"^data:([\w.+/-]*)(;[\w=.+-]+)*?;base64,", re.I)


@dataclass(frozen=True)
class CleanImage:
    data: bytes  # the re-encoded image we store and forward
    mime: str
    extension: str
    width: int
    height: int
    frames: int  # frames in the upload (only the first is kept)
    received_bytes: int
    sha256: str  # of `data`
    thumbnail: bytes
    thumbnail_mime: str


def refuse(code: ImageErrorCode, message: str, **details) -> ApiError:
    """An upload refused with `code` (its status is the registry's, images.error_codes)."""
    return ApiError(code, message, details=details)


def too_large(max_bytes: int) -> ApiError:
    megabytes = max_bytes / (1024 * 1024)
    return refuse(
        ImageErrorCode.IMAGE_TOO_LARGE,
        f"The image is larger than {megabytes:g} MB.",
        max_bytes=max_bytes,
    )


def base64_limit(max_bytes: int) -> int:
    """Characters of base64 (without padding slack) that `max_bytes` bytes take."""
    return 4 * ((max_bytes + 2) // 3)


def normalize_mime(mime: str | None) -> str:
    value = (mime or "").split(";", 1)[0].strip().lower()
    return MIME_ALIASES.get(value, value)


def decode_base64(text: object, *, max_bytes: int | None = None) -> tuple[bytes, str]:
    """Bytes of a base64 string or `data:<mime>;base64,` URL, and the URL's mime (or "")."""
    max_bytes = max_bytes or settings.IMAGE_MAX_BYTES
    if not isinstance(text, str) or not text:
        raise refuse(ImageErrorCode.IMAGE_MISSING, "Send the image as base64 in `data`.")
    url_mime = ""
    if text[:5].lower() == "data:":
        match = _DATA_URL.match(text[:200])
        if match is None:
            raise refuse(
                ImageErrorCode.IMAGE_INVALID_BASE64, "`data` is a data URL without base64 content."
            )
        url_mime = normalize_mime(match.group(1))
        text = text[match.end() :]
    # Size before decoding: a 100 MB string is refused without allocating its bytes.
    if len(text) > base64_limit(max_bytes) + 1024:
        compact = "".join(text.split())
        if len(compact) > base64_limit(max_bytes):
            raise too_large(max_bytes)
        text = compact
    else:
        text = "".join(text.split())
    if "-" in text or "_" in text:  # the URL-safe alphabet
        text = text.translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise refuse(ImageErrorCode.IMAGE_INVALID_BASE64, "`data` is not valid base64.") from exc
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    return data, url_mime


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name the magic bytes announce, if it is one we accept."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def gif_frame_count(data: bytes, stop_after: int) -> int:
    """Frames in a GIF, counted from its block structure without decoding anything.

    Stops as soon as the count passes `stop_after`, so a file of a million one-pixel frames
    costs no more than its first few hundred. Returns what it counted before any damage.
    """
    pos = 13
    if len(data) < pos:
        return 0
    packed = data[10]
    if packed & 0x80:
        pos += 3 * (2 ** ((packed & 7) + 1))
    frames = 0
    n = len(data)

    def skip_sub_blocks(p: int) -> int:
        while p < n:
            size = data[p]
            p += 1 + size
            if size == 0:
                return p
        return n

    while pos < n:
        block = data[pos]
        if block == 0x2C:  # image descriptor
            frames += 1
            if frames > stop_after:
                return frames
            if pos + 10 > n:
                return frames
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 * (2 ** ((local & 7) + 1))
            pos = skip_sub_blocks(pos + 1)  # + LZW minimum code size
        elif block == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        else:  # 0x3B trailer, or damage (Pillow's decode will judge that)
            return frames
    return frames


def _open(data: bytes, fmt: str) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=[fmt])


def _type_not_allowed() -> ApiError:
    return refuse(
        ImageErrorCode.IMAGE_TYPE_NOT_ALLOWED,
        "Only JPEG, PNG, GIF and WebP images can be sent.",
        allowed=sorted(ALLOWED_MIMES),
    )


def _format_of(data: bytes) -> str:
    """The content's format (JPEG, PNG, GIF, WEBP); refuses an oversized, empty or other file."""
    max_bytes = settings.IMAGE_MAX_BYTES
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data:
        raise refuse(ImageErrorCode.IMAGE_CORRUPT, "The image is empty.")
    fmt = sniff_format(data)
    if fmt is None:
        raise _type_not_allowed()
    return fmt


def _declared_check(declared_mimes: tuple[str, ...], mime: str) -> None:
    """Every type the client claimed that says something must be allowed and match `mime`."""
    for declared in sorted({normalize_mime(m)[:100] for m in declared_mimes} - UNDECLARED):
        if declared not in ALLOWED_MIMES:
            raise _type_not_allowed()
        if declared != mime:
            raise refuse(
                ImageErrorCode.IMAGE_TYPE_MISMATCH,
                f"The file was sent as {declared} but its content is {mime}.",
                declared=declared,
                detected=mime,
            )


def _decode_slot_take() -> None:
    """One of the few decode slots, or 503 when they stay busy for DECODE_WAIT_SECONDS."""
    if not _decode_slots.acquire(timeout=DECODE_WAIT_SECONDS):
        raise ApiError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "Too many images are being processed right now; send it again shortly.",
            headers={"Retry-After": "5"},
        )


def _decode(data: bytes, fmt: str, max_frames: int) -> tuple[int, _Encoded, bytes, str]:
    """(frames, clean copy, thumbnail, thumbnail mime); every decoding failure becomes the
    refusal it stands for (too many pixels, damaged)."""
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns (instead of failing) between 1x and 2x its global
        # MAX_IMAGE_PIXELS; make that an error for this call without touching the global.
        # The filter is process-wide while it lasts, so threads validating at the same time
        # may see it early or late; that is harmless because the primary guard is our own
        # width x height check in _header_check, which needs no global state.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # The header alone first (no pixel decoded, no slot taken): a pixel bomb costs
            # nothing. Only then one of the few decode slots.
            frames = _header_check(data, fmt, max_frames)
            _decode_slot_take()
            try:
                _inspect(data, fmt)
                clean, thumb, thumb_mime = _reencode(data, fmt)
            finally:
                _decode_slots.release()
        except ApiError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels() from exc
        except MemoryError as exc:
            raise _too_many_pixels() from exc
        except Exception as exc:
            # Pillow reports damage as OSError, SyntaxError, ValueError, EOFError, struct.error…
            raise refuse(
                ImageErrorCode.IMAGE_CORRUPT,
                "The image is damaged or incomplete and cannot be opened.",
            ) from exc
    return frames, clean, thumb, thumb_mime


def image_validate(data: bytes, *, declared_mimes: tuple[str, ...] = ()) -> CleanImage:
    """Check an upload by its content and return the clean copy to store, or raise ApiError.

    `declared_mimes`: every type the client claimed (the `mime` field, a data URL's type, a
    multipart part's Content-Type); each one that says something must match the content.
    """
    fmt = _format_of(data)
    mime, extension = FORMATS[fmt]
    _declared_check(declared_mimes, mime)
    max_frames = settings.IMAGE_MAX_FRAMES
    if fmt == "GIF" and gif_frame_count(data, max_frames) > max_frames:
        raise _too_many_frames(max_frames)
    frames, clean, thumb, thumb_mime = _decode(data, fmt, max_frames)
    out_w, out_h = clean.size
    buffer = clean.data
    return CleanImage(
        data=buffer,
        mime=mime,
        extension=extension,
        width=out_w,
        height=out_h,
        frames=frames,
        received_bytes=len(data),
        sha256=hashlib.sha256(buffer).hexdigest(),
        thumbnail=thumb,
        thumbnail_mime=thumb_mime,
    )


def _too_many_pixels() -> ApiError:
    limit = settings.IMAGE_MAX_PIXELS
    return refuse(
        ImageErrorCode.IMAGE_TOO_MANY_PIXELS,
        f"The image has more than {limit} pixels.",
        max_pixels=limit,
    )


def _too_many_frames(limit: int) -> ApiError:
    return refuse(
        ImageErrorCode.IMAGE_TOO_MANY_FRAMES,
        f"The animation has more than {limit} frames.",
        max_frames=limit,
    )


def _header_check(data: bytes, fmt: str, max_frames: int) -> int:
    """Pixels and frames from the header (Image.open reads no pixel data); returns the frames."""
    with _open(data, fmt) as im:
        if im.format != fmt:
            raise refuse(
                ImageErrorCode.IMAGE_TYPE_NOT_ALLOWED,
                "Only JPEG, PNG, GIF and WebP images can be sent.",
            )
        width, height = im.size
        # Before any pixel is decoded: the header alone says how much memory a decode takes.
        if width <= 0 or height <= 0 or width * height > settings.IMAGE_MAX_PIXELS:
            raise _too_many_pixels()
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > max_frames:
            raise _too_many_frames(max_frames)
    return frames


def decode_count() -> int:
    """Full decodes started by this process (tests: proof that a refusal decoded nothing)."""
    return _decodes[0]


_decodes = [0]


def _inspect(data: bytes, fmt: str) -> None:
    """verify() and a full decode, after _header_check."""
    _decodes[0] += 1
    with _open(data, fmt) as im:
        im.verify()
    # verify() leaves the image unusable; decode a fresh copy completely (truncation shows here).
    with _open(data, fmt) as im:
        im.load()


@dataclass
class _Encoded:
    data: bytes
    size: tuple[int, int]


def _reencode(data: bytes, fmt: str) -> tuple[_Encoded, bytes, str]:
    with _open(data, fmt) as im:
        im.seek(0)
        im.load()
        transparency = im.info.get("transparency")
        icc = im.info.get("icc_profile")
        frame = ImageOps.exif_transpose(im)  # a copy, rotated as the camera meant
    mode_before = frame.mode
    side = settings.IMAGE_MAX_SIDE
    if side and max(frame.size) > side:
        if frame.mode in ("P", "1"):
            frame = frame.convert("RGBA" if transparency is not None else "RGB")
            transparency = None
        frame.thumbnail((side, side), Image.Resampling.LANCZOS)
    # Nothing of the original's metadata survives: we pass only what we choose.
    frame.info = {}
    options: dict = {}
    if fmt == "JPEG":
        if frame.mode not in ("L", "RGB"):
            frame = frame.convert("RGB")
        options = {"quality": JPEG_QUALITY, "optimize": True}
    elif fmt == "PNG":
        if frame.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
            frame = frame.convert("RGBA")
        if transparency is not None and frame.mode in ("P", "L", "RGB"):
            options["transparency"] = transparency
    elif fmt == "GIF":
        if frame.mode not in ("P", "L"):
            frame = frame.convert("RGBA").quantize()
        elif transparency is not None:
            options["transparency"] = transparency
    else:  # WEBP
        if frame.mode not in ("RGB", "RGBA"):
            has_alpha = transparency is not None or "A" in frame.mode
            frame = frame.convert("RGBA" if has_alpha else "RGB")
        options = {"quality": JPEG_QUALITY, "method": 4}
    # A colour profile is colour, not identity; keep it while the pixels are still in its space.
    if icc and frame.mode == mode_before and fmt != "GIF":
        options["icc_profile"] = icc
    out = io.BytesIO()
    frame.save(out, format=fmt, **options)
    thumb, thumb_mime = _thumbnail(frame, options.get("transparency"))
    return _Encoded(out.getvalue(), frame.size), thumb, thumb_mime


def _thumbnail(frame: Image.Image, transparency) -> tuple[bytes, str]:
    size = settings.IMAGE_THUMBNAIL_SIZE
    if frame.mode.startswith("I"):  # 16/32-bit greyscale: scale down to 8 bits first
        frame = frame.point(lambda v: v / 256).convert("L")
        transparency = None
    has_alpha = "A" in frame.mode or transparency is not None
    if transparency is not None:
        frame = frame.copy()
        frame.info["transparency"] = transparency
    thumb = frame.convert("RGBA" if has_alpha else "RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if has_alpha:
        thumb.save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    thumb.save(out, format="JPEG", quality=80)
    return out.getvalue(), "image/jpeg"

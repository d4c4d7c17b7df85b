"""Stable error codes of image uploads; clients may switch on them."""

from __future__ import annotations

import enum

from config.errors import ErrorSpec, register_errors


class ImageErrorCode(enum.StrEnum):
    IMAGES_DISABLED = "IMAGES_DISABLED"  # 403: this chatbot does not take photos
    IMAGE_MISSING = "IMAGE_MISSING"  # 400: no image in the request
    IMAGE_INVALID_BASE64 = "IMAGE_INVALID_BASE64"  # 400: `data` is not base64
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"  # 413: more bytes than IMAGE_MAX_BYTES
    IMAGE_TYPE_NOT_ALLOWED = "IMAGE_TYPE_NOT_ALLOWED"  # 415: not JPEG, PNG, GIF or WebP
    IMAGE_TYPE_MISMATCH = "IMAGE_TYPE_MISMATCH"  # 415: declared type differs from the content
    IMAGE_CORRUPT = "IMAGE_CORRUPT"  # 400: truncated, damaged or empty
    IMAGE_TOO_MANY_PIXELS = "IMAGE_TOO_MANY_PIXELS"  # 400: width x height over IMAGE_MAX_PIXELS
    IMAGE_TOO_MANY_FRAMES = "IMAGE_TOO_MANY_FRAMES"  # 400: animation over IMAGE_MAX_FRAMES
    IMAGE_LIMIT_REACHED = "IMAGE_LIMIT_REACHED"  # 409: IMAGE_MAX_PER_CONVERSATION reached
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"  # 404: no such image for these credentials


_STATUS = {
    ImageErrorCode.IMAGES_DISABLED: 403,
    ImageErrorCode.IMAGE_MISSING: 400,
    ImageErrorCode.IMAGE_INVALID_BASE64: 400,
    ImageErrorCode.IMAGE_TOO_LARGE: 413,
    ImageErrorCode.IMAGE_TYPE_NOT_ALLOWED: 415,
    ImageErrorCode.IMAGE_TYPE_MISMATCH: 415,
    ImageErrorCode.IMAGE_CORRUPT: 400,
    ImageErrorCode.IMAGE_TOO_MANY_PIXELS: 400,
    ImageErrorCode.IMAGE_TOO_MANY_FRAMES: 400,
    ImageErrorCode.IMAGE_LIMIT_REACHED: 409,
    ImageErrorCode.IMAGE_NOT_FOUND: 404,
}
register_errors({code: ErrorSpec(status) for code, status in _STATUS.items()})

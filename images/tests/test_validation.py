"""Image validation by content: formats, disguises, damage, bombs, animations, metadata."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from config.errors import ApiError
from images.tests.samples import FORMATS, animated_gif, image_bytes, jpeg_with_gps, png_bomb
from images.validation import decode_base64, gif_frame_count, image_validate


def refusal(data: bytes, **kwargs) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        image_validate(data, **kwargs)
    return info.value.status, str(info.value.code)


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_accepts_each_allowed_format_and_reencodes_it_in_the_same_format(fmt):
    clean = image_validate(image_bytes(fmt), declared_mimes=(FORMATS[fmt],))
    assert clean.mime == FORMATS[fmt]
    assert (clean.width, clean.height) == (40, 30)
    assert Image.open(io.BytesIO(clean.data)).format == fmt
    assert Image.open(io.BytesIO(clean.thumbnail)).size == (40, 30)


def test_it_refuses_png_declared_but_jpeg_content():
    assert refusal(image_bytes("JPEG"), declared_mimes=("image/png",)) == (
        415,
        "IMAGE_TYPE_MISMATCH",
    )


def test_it_refuses_a_text_file_whatever_it_is_called():
    assert refusal(b"Dear shop, my bottle broke.\n", declared_mimes=("image/jpeg",)) == (
        415,
        "IMAGE_TYPE_NOT_ALLOWED",
    )


def test_it_refuses_types_outside_the_four_even_when_honestly_declared():
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, format="BMP")
    assert refusal(bmp.getvalue(), declared_mimes=("image/bmp",)) == (415, "IMAGE_TYPE_NOT_ALLOWED")


def test_it_refuses_an_allowed_content_declared_as_a_forbidden_type():
    assert refusal(image_bytes("PNG"), declared_mimes=("image/svg+xml",)) == (
        415,
        "IMAGE_TYPE_NOT_ALLOWED",
    )


def test_common_aliases_and_silent_declarations_are_fine():
    image_validate(
        image_bytes("JPEG"), declared_mimes=("image/jpg", "application/octet-stream", "")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_it_refuses_a_truncated_file(fmt):
    noise = Image.effect_noise((120, 120), 60).convert("RGB" if fmt != "GIF" else "L")
    out = io.BytesIO()
    noise.save(out, format=fmt)
    data = out.getvalue()
    assert refusal(data[: len(data) // 2]) == (400, "IMAGE_CORRUPT")


def test_it_refuses_magic_bytes_followed_by_garbage():
    assert refusal(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100) == (400, "IMAGE_CORRUPT")


def test_it_refuses_a_decompression_bomb_before_decoding_it():
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 100_000  # small on the wire, 400 megapixels decoded
    assert refusal(bomb) == (400, "IMAGE_TOO_MANY_PIXELS")


def test_it_refuses_images_over_the_pixel_limit_set_for_this_installation(settings):
    settings.IMAGE_MAX_PIXELS = 100 * 100
    assert refusal(image_bytes("PNG", size=(101, 100))) == (400, "IMAGE_TOO_MANY_PIXELS")
    image_validate(image_bytes("PNG", size=(100, 100)))


def test_it_refuses_an_animation_with_too_many_frames(settings):
    settings.IMAGE_MAX_FRAMES = 5
    assert refusal(animated_gif(6)) == (400, "IMAGE_TOO_MANY_FRAMES")


def test_an_animation_within_the_limit_is_kept_as_its_first_frame(settings):
    settings.IMAGE_MAX_FRAMES = 5
    clean = image_validate(animated_gif(5))
    assert clean.frames == 5
    assert getattr(Image.open(io.BytesIO(clean.data)), "n_frames", 1) == 1


def test_gif_frames_are_counted_without_decoding_and_the_count_stops_early():
    data = animated_gif(300)
    assert gif_frame_count(data, 1000) == 300
    assert gif_frame_count(data, 10) == 11


def test_it_refuses_oversized_files(settings):
    data = image_bytes("PNG", size=(64, 64))
    settings.IMAGE_MAX_BYTES = len(data) - 1
    assert refusal(data) == (413, "IMAGE_TOO_LARGE")


def test_exif_with_gps_is_stripped_and_the_orientation_applied():
    original = jpeg_with_gps(size=(60, 40))
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the GPS is there
    clean = image_validate(original)
    stored = Image.open(io.BytesIO(clean.data))
    assert not stored.getexif()
    assert b"Exif" not in clean.data and b"PhoneMaker" not in clean.data
    assert (clean.width, clean.height) == (40, 60)  # rotated as the camera meant


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_is_stripped_from_png_and_webp_too(fmt):
    im = Image.new("RGB", (20, 20), (1, 2, 3))
    exif = im.getexif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (55.0, 40.0, 30.0)
    out = io.BytesIO()
    im.save(out, format=fmt, exif=exif.tobytes())
    clean = image_validate(out.getvalue())
    assert not Image.open(io.BytesIO(clean.data)).getexif()
    assert b"PhoneMaker" not in clean.data


def test_large_images_are_scaled_down_for_storage(settings):
    settings.IMAGE_MAX_SIDE = 50
    clean = image_validate(image_bytes("JPEG", size=(200, 100)))
    assert (clean.width, clean.height) == (50, 25)


def test_base64_decoding_accepts_data_urls_and_refuses_garbage():
    data, mime = decode_base64("data:image/png;base64,aGVsbG8=")
    assert (data, mime) == (b"hello", "image/png")
    with pytest.raises(ApiError) as info:
        decode_base64("this is not base64 !!!")
    assert info.value.code == "IMAGE_INVALID_BASE64"


def test_base64_over_the_limit_is_refused_before_decoding(settings):
    settings.IMAGE_MAX_BYTES = 1000
    with pytest.raises(ApiError) as info:
        decode_base64("A" * 5000)
    assert (info.value.status, info.value.code) == (413, "IMAGE_TOO_LARGE")

"""Images built in memory for tests, including hostile ones (bombs, truncations, disguises)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), color=(200, 30, 30)) -> bytes:
    im = Image.new("RGB", size, color)
    # A little structure so encoders and hashes differ from a flat colour.
    for x in range(min(size[0], 10)):
        im.putpixel((x, x % size[1]), (x * 20 % 256, 100, 50))
    out = io.BytesIO()
    im.save(out, format=fmt)
    return out.getvalue()


def jpeg_with_gps(size: tuple[int, int] = (60, 40)) -> bytes:
    """A JPEG whose EXIF says where it was taken and that it must be rotated (orientation 6)."""
    im = Image.new("RGB", size, (10, 120, 200))
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (55.0, 40.0, 30.0)
    gps[3] = "E"
    gps[4] = (12.0, 34.0, 56.0)
    out = io.BytesIO()
    im.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def animated_gif(frames: int, size: tuple[int, int] = (16, 16)) -> bytes:
    images = []
    for i in range(frames):
        im = Image.new("P", size, 0)
        im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        im.putpixel((i % size[0], (i // size[0]) % size[1]), 1)  # each frame differs
        images.append(im)
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=50)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: ~50 kB on disk, 400 megapixels decoded.

    Built row by row through one compressor, so making it costs milliseconds, not gigabytes.
    """
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )

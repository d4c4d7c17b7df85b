"""What one image decode costs at the pixel budget (issue #18 item 3: "bounded and measured").

Makes the two worst images `IMAGE_MAX_PIXELS` lets through (a flat PNG, a few hundred KB that
decode to the full budget, and a noisy JPEG just under `IMAGE_MAX_BYTES`) and runs
`images.validation.image_validate` on each in a fresh process: wall and CPU time, and the peak
memory the decode adds. `DECODE_SLOTS` of these run at once per web process at most.

    ./run manage shell -c "from bench.image_decode import main; main()"
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ONE = """
import os, resource, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from images.validation import image_validate
data = open(sys.argv[1], "rb").read()
# The resident size now (not the peak so far, which start-up may have pushed higher).
before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
wall, cpu = time.perf_counter(), time.process_time()
image_validate(data)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
print(f"{len(data) / 1024:.0f} KB: wall {wall:.2f} s, CPU {cpu:.2f} s, peak memory +{peak:.0f} MB")
"""


def worst_images(max_pixels: int, max_bytes: int) -> dict[str, bytes]:
    from PIL import Image

    side = int(max_pixels**0.5)
    flat = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(flat, "PNG")
    noise = Image.frombytes("RGB", (side, side // 4), os.urandom(side * (side // 4) * 3))
    photo = b""
    for quality in (60, 40, 25, 10):
        buf = io.BytesIO()
        noise.resize((side, side)).save(buf, "JPEG", quality=quality)
        photo = buf.getvalue()
        if len(photo) <= max_bytes:
            break
    return {f"flat PNG {side}x{side}": flat.getvalue(), f"photo JPEG {side}x{side}": photo}


def main() -> None:
    from django.conf import settings

    root = Path(__file__).resolve().parent.parent
    images = worst_images(settings.IMAGE_MAX_PIXELS, settings.IMAGE_MAX_BYTES)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in images.items():
            path = Path(tmp) / "image"
            path.write_bytes(data)
            result = subprocess.run(
                [sys.executable, "-c", ONE, str(path)],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{name}, {result.stdout.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()

"""Summaries of py-spy's collapsed stacks (`py-spy record -f raw`): where a process spent time."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_IDLE = ("select", "poll", "epoll", "wait", "_worker", "sleep", "acquire", "get", "park")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def summarize(path: Path, top: int = 20) -> dict:
    """Self and inclusive sample shares of the busiest frames (idle waits left out of `busy`)."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        if leaf.split(" ", 1)[0] in _IDLE or "select" in leaf or "epoll" in leaf:
            idle += n
            continue
        self_time[leaf] += n
        for frame in set(frames):
            inclusive[frame] += n
        mod = leaf.rsplit("(", 1)[-1].rstrip(")").split("/", 1)[0]
        modules[mod] += n
    busy = max(1, total - idle)
    return {
        "samples": total,
        "busy_share": round(busy / total, 3) if total else 0,
        "self": [(f, round(100 * n / busy, 1)) for f, n in self_time.most_common(top)],
        "inclusive": [(f, round(100 * n / busy, 1)) for f, n in inclusive.most_common(top)],
        "packages": [(m, round(100 * n / busy, 1)) for m, n in modules.most_common(12)],
    }


if __name__ == "__main__":
    import json
    import sys

    for arg in sys.argv[1:]:
        print(arg)
        print(json.dumps(summarize(Path(arg)), indent=1))

"""The AI clients (aiclients/) stay free of Django and of the apps: the turn runner drives them
from one long-lived asyncio loop per worker, and a client that imported Django would pull the
ORM (and its thread-bound connections) into that loop. Only the outbound guard, which is
Django-free itself, may be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("django", "rest_framework", "channels", "celery", "config")
APPS = ("accounts", "analytics", "chatbots", "conversations", "helpdesk", "images", "inbox")
APPS += ("knowledge", "monitoring", "orders", "privacy", "quality", "tools")


def test_importing_every_ai_client_loads_neither_django_nor_any_app():
    modules = sorted(p.stem for p in (ROOT / "aiclients").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module('aiclients.' + m)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert "aiclients" in loaded
    assert loaded & {*FORBIDDEN, *APPS} == set()

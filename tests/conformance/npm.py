"""npm packages for the conformance suite, installed once into a cache outside the checkout
(`CONFORMANCE_CACHE`, default ~/.cache/chatbot-conformance) so that a fresh clone reuses them.
A test that needs one is skipped, with the reason, only when node/npm are missing or the install
fails (no registry)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(
    os.environ.get("CONFORMANCE_CACHE", Path.home() / ".cache" / "chatbot-conformance")
).expanduser()


def npm_package(folder: str, spec: str, *, timeout: float = 600) -> Path:
    """The node_modules folder holding `spec` (e.g. "flowise-sdk@1.0.9"), installed if needed."""
    name = spec.rsplit("@", 1)[0] if spec.count("@") > (1 if spec.startswith("@") else 0) else spec
    root = CACHE / folder
    wanted = spec.rsplit("@", 1)[-1] if "@" in spec.lstrip("@") else None
    package_json = root / "node_modules" / name / "package.json"
    # "24" asks for any 24.x; "3.1.4" for exactly that version.
    version = f'"version": "{wanted}.' if wanted and "." not in wanted else f'"version": "{wanted}"'
    if package_json.exists() and (wanted is None or version in package_json.read_text()):
        return root / "node_modules"
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: needed for {spec}")
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "package.json").exists():
        (root / "package.json").write_text('{"name": "conformance", "private": true}\n')
    result = subprocess.run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", spec],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0 or not package_json.exists():
        pytest.skip(f"npm could not install {spec}: {result.stderr.strip()[-500:]}")
    return root / "node_modules"

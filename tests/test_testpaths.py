"""`./run test` (and CI) collect every app's tests: an app missing from pytest's testpaths is
silently never tested — as accounts/, inbox/, knowledge/ and privacy/ once were."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_folder_with_tests_is_in_testpaths():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = set(config["tool"]["pytest"]["ini_options"]["testpaths"])
    with_tests = {
        path.parent.name
        for path in ROOT.glob("*/tests")
        if path.is_dir() and any(path.rglob("test_*.py"))
    }
    with_tests |= {"tests"}

    assert with_tests - testpaths == set()

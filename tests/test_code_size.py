"""No product function longer than 65 lines, no class longer than 250 (issue #16, "Done when").

A function that long no longer reads as one story: it is split into named steps (helpers whose
names and docstrings say what each does), and a class that long has more than one job, which go
to collaborators. The product is every package in pyproject's testpaths but bench/ and tests/,
plus config, outbound, aiclients and devstack; migrations and tests are left out. Lines count
from the `def` or `class` line to the last line of the body, decorators not included.

EXCEPTIONS lists what is still over its limit, by "path:qualified name", with its length when
it was listed, a ceiling: the list may only shrink. An entry whose code grew past it fails, and
so does one that is back within the limit (or gone), so it leaves the list in the commit that
shortens it; lower an entry when you shorten its code. A new long function fails until it is
split, never by adding an entry or raising a limit.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FUNCTION_MAX = 65
CLASS_MAX = 250
EXTRA_PACKAGES = ("config", "outbound", "aiclients", "devstack")
NOT_PRODUCT = ("bench", "tests")

EXCEPTIONS: dict[str, int] = {}


def product_packages() -> list[str]:
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]["testpaths"]
    return sorted({*testpaths, *EXTRA_PACKAGES} - set(NOT_PRODUCT))


def product_files() -> list[Path]:
    files = []
    for package in product_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "migrations" in parts or "tests" in parts or path.name.startswith("test_"):
                continue
            files.append(path)
    return files


def lengths(path: Path, root: Path = ROOT) -> dict[str, tuple[str, int]]:
    """Every function and class of a module, nested ones too, by "path:qualified name":
    (kind, lines)."""
    found: dict[str, tuple[str, int]] = {}
    relative = path.relative_to(root).as_posix()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                assert child.end_lineno is not None
                found[f"{relative}:{name}"] = (kind, child.end_lineno - child.lineno + 1)
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return found


def all_lengths() -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for path in product_files():
        found.update(lengths(path))
    return found


def limit(kind: str) -> int:
    return CLASS_MAX if kind == "class" else FUNCTION_MAX


def test_the_product_packages_are_found():
    packages = product_packages()
    assert {"conversations", "config", "outbound", "aiclients", "devstack"} <= set(packages)
    assert not {"bench", "tests"} & set(packages)
    assert len(product_files()) > 100


def test_no_function_is_over_65_lines_and_no_class_over_250():
    too_long = [
        f"{where}: {kind} of {size} lines (limit {limit(kind)})"
        for where, (kind, size) in sorted(all_lengths().items())
        if size > limit(kind) and where not in EXCEPTIONS
    ]
    assert not too_long, "split these into named steps or collaborators:\n" + "\n".join(too_long)


def test_the_exceptions_only_shrink():
    found = all_lengths()
    stale = []
    for where, allowed in EXCEPTIONS.items():
        if where not in found:
            stale.append(f"{where}: gone; remove it from EXCEPTIONS")
            continue
        kind, size = found[where]
        if size > allowed:
            stale.append(f"{where}: {size} lines, more than the {allowed} allowed; split it")
        elif size <= limit(kind):
            stale.append(f"{where}: within the limit now; remove it from EXCEPTIONS")
    assert not stale, "\n".join(stale)


def test_the_measure_counts_each_nested_function_and_class_on_its_own(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        "class Outer:\n"
        "    def method(self):\n"
        "        def inner():\n"
        "            return 1\n"
        "\n"
        "        return inner()\n"
    )
    assert lengths(module, root=tmp_path) == {
        "sample.py:Outer": ("class", 6),
        "sample.py:Outer.method": ("function", 5),
        "sample.py:Outer.method.inner": ("function", 2),
    }

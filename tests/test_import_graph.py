"""The apps' imports point down the floors (issue #16 item 4), and no apps import each other in a
circle at module level.

FLOORS is the one declared order, ground floor first, that docs/architecture.md's table mirrors:
an app may import from its own floor or below. Every import of product code counts, a function's
local import as much as a module's (a local import hides a dependency, it does not remove it);
only `if TYPE_CHECKING:` blocks, migrations and tests are left out. Higher floors reach lower ones
through hooks the lower floor defines (conversations.hooks, Django signals, the tool registry;
docs/architecture.md lists them).

ALLOWED_BACK_ARROWS lists each upward import still in the code, by importing module and the app it
imports, with the reason it is still there. The list may only shrink: an entry whose import is gone
fails the test, so it leaves the list in the commit that removes the import, and a new upward
import fails until it is turned around (a hook, a helper moved down, the code moved up), never by
adding an entry. config's composition modules (URLconf, ASGI routing, the Celery app) import the
apps by Django's design and are named in CONFIG_COMPOSITION, not config as a whole.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLOORS: list[tuple[str, ...]] = [
    ("outbound", "aiclients", "config"),
    ("accounts",),
    ("chatbots",),
    # The turn runner calls the retriever and the tool loop; neither needs the conversations app.
    ("knowledge", "tools"),
    ("conversations",),
    ("orders", "helpdesk", "images", "quality"),
    # The inbox shows each question's analysis; the dashboard computes the figures it shows too.
    ("analytics",),
    ("inbox", "monitoring"),
    ("privacy",),
    ("devstack",),
]
FLOOR = {app: level for level, apps in enumerate(FLOORS) for app in apps}

# Django's composition idiom: these modules wire the apps together and may import any of them.
CONFIG_COMPOSITION = {"config.urls", "config.asgi", "config.celery"}

ALLOWED_BACK_ARROWS: dict[tuple[str, str], str] = {}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, local: bool = False):
    """(imported module name, whether the import runs only when a function is called)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), local=local)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, local
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, local
        inside_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _imports(node, local=local or inside_function)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_edges() -> dict[tuple[str, str], bool]:
    """(importing module, imported app) -> whether any of those imports is module-level."""
    edges: dict[tuple[str, str], bool] = {}
    for app in FLOOR:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            module = _module_name(path)
            for name, local in _imports(ast.parse(path.read_text(), str(path))):
                target = name.split(".")[0]
                if target in FLOOR and target != app:
                    edges[(module, target)] = edges.get((module, target), False) or not local
    return edges


def _upward(module: str, target: str) -> bool:
    return module not in CONFIG_COMPOSITION and FLOOR[target] > FLOOR[module.split(".")[0]]


def test_every_product_app_has_a_floor():
    packages = {p.parent.name for p in ROOT.glob("*/apps.py")} | {"outbound", "aiclients", "config"}
    assert packages - set(FLOOR) == set()


def test_no_app_imports_from_a_higher_floor_except_the_listed_back_arrows():
    upward = {edge for edge in app_edges() if _upward(*edge)}
    assert sorted(upward - set(ALLOWED_BACK_ARROWS)) == []


def test_every_listed_back_arrow_is_still_in_the_code_so_the_list_only_shrinks():
    upward = {edge for edge in app_edges() if _upward(*edge)}
    assert sorted(set(ALLOWED_BACK_ARROWS) - upward) == []


def test_no_apps_import_each_other_in_a_circle_at_module_level():
    edges = {
        edge
        for edge, module_level in app_edges().items()
        if module_level and edge[0] not in CONFIG_COMPOSITION
    }
    graph: dict[str, set[str]] = defaultdict(set)
    for module, target in edges:
        graph[module.split(".")[0]].add(target)

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            app = stack.pop()
            if app == goal:
                return True
            if app not in seen:
                seen.add(app)
                stack.extend(graph[app])
        return False

    # A circle across floors has an upward import in it, one on a floor only a sideways one.
    closing = {
        (module, target)
        for module, target in edges
        if FLOOR[target] >= FLOOR[module.split(".")[0]] and reaches(target, module.split(".")[0])
    }
    assert sorted(closing) == []


def test_a_local_import_counts_and_a_type_checking_import_does_not():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from chatbots.models import Chatbot\n"
        "def f():\n    from monitoring.services import error_record\n"
    )
    assert list(_imports(tree)) == [("typing", False), ("monitoring.services", True)]

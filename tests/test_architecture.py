"""The dependency rules of design.md §3, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"

# package -> bridge packages it must never import
FORBIDDEN = {
    "bridge.session": (
        "bridge.matrix",
        "bridge.core",
        "bridge.db",
        "bridge.commands",
        "bridge.app",
    ),
    "bridge.matrix": (
        "bridge.session",
        "bridge.core",
        "bridge.db",
        "bridge.commands",
        "bridge.app",
    ),
    "bridge.db": (
        "bridge.session",
        "bridge.matrix",
        "bridge.core",
        "bridge.commands",
        "bridge.app",
    ),
    "bridge.commands": ("bridge.app",),
    "bridge.core": ("bridge.app", "bridge.commands"),
}
# third-party packages that belong to one layer only
LAYER_ONLY = {
    "sqlalchemy": "bridge.db",
    "mautrix": ("bridge.matrix", "bridge.core", "bridge.commands", "bridge.app"),
}


def modules() -> list[tuple[str, set[str]]]:
    found = []
    for path in sorted(BRIDGE.rglob("*.py")):
        if path.name.endswith("_pb2.py"):
            continue
        rel = path.relative_to(BRIDGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
        found.append((name, imported))
    return found


MODULES = modules()


def test_there_are_modules_to_check() -> None:
    assert len(MODULES) > 50


@pytest.mark.parametrize(("module", "imported"), MODULES, ids=[m for m, _ in MODULES])
def test_layers_import_only_what_they_may(module: str, imported: set[str]) -> None:
    for package, banned in FORBIDDEN.items():
        if module == package or module.startswith(package + "."):
            bad = {i for i in imported if i.startswith(banned)}
            assert not bad, f"{module} imports {bad}"
    for library, owners in LAYER_ONLY.items():
        uses = {i for i in imported if i == library or i.startswith(library + ".")}
        if uses:
            assert module.startswith(owners), f"{module} uses {library}, which belongs to {owners}"

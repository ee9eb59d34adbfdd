"""The dependency rules of docs/architecture.md §3, checked on the imports of every module.

Layers: ``__main__ → app → commands → core → {matrix, session, db} → {ids, backoff, config}``
(``ids`` and ``backoff`` are pure helpers every layer may use; they import no other layer;
``supervisor`` uses only ``backoff``). Inside
``core``: each conversation kind (``core/community``, ``core/direct``, later ``core/group``) is
a package of its own that may use the portal machinery (``core/portal``) and the shared pieces
(``core/ghosts``, ``core/logins``, ``core/convert``, ...), but never another kind; the portal
machinery and the shared pieces know no kind; only ``bridge.app`` (with ``bridge.app_kinds``)
builds kinds (``wiring``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"

# the conversation kinds: one package each, the same shape each
KINDS = ("bridge.core.community", "bridge.core.direct", "bridge.core.group")
KIND_SHAPE = ("__init__.py", "inbound.py", "outbound.py", "media.py", "wiring.py")

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
    "bridge.core.portal": KINDS,
    "bridge.core.community": tuple(k for k in KINDS if k != "bridge.core.community"),
    "bridge.core.direct": tuple(k for k in KINDS if k != "bridge.core.direct"),
    "bridge.core.group": tuple(k for k in KINDS if k != "bridge.core.group"),
    # pure converters: no I/O, no database, no network clients, no portal machinery
    "bridge.core.convert": (
        "bridge.db",
        "bridge.matrix",
        "bridge.session.snode",
        "bridge.session.sogs.client",
        "bridge.session.files",
        "bridge.core.portal",
        *KINDS,
    ),
}
# pure helpers at the bottom, usable by every layer (bridge.stopping: bounded shutdown steps;
# bridge.keyed_locks: a lock per room or account):
# they depend on no other bridge module
for _helper in ("bridge.ids", "bridge.backoff", "bridge.stopping", "bridge.keyed_locks"):
    FORBIDDEN[_helper] = ("bridge.",)
# the appservice endpoint's bookkeeping of transaction ids (a pure module: no I/O)
FORBIDDEN["bridge.matrix.txn_gaps"] = ("bridge.",)
# the metrics' definitions (docs/operations.md §5.4): every layer records into them, so they
# import no other bridge module; their HTTP endpoint uses only them
FORBIDDEN["bridge.metrics"] = ("bridge.",)
FORBIDDEN["bridge.metrics_server"] = tuple(
    f"bridge.{name}" for name in ("session", "matrix", "db", "core", "commands", "app", "config")
)
# the supervisor of long-running loops: asyncio, the backoff, the metrics; usable by every layer
FORBIDDEN["bridge.supervisor"] = tuple(
    f"bridge.{name}" for name in ("session", "matrix", "db", "core", "commands", "app", "config")
)
SHARED_CORE = (
    "ghosts",
    "logins",
    "secrets",
    "prompts",
    "downloads",
    "expiring",
    "own_ids",
    "pills",
    "links",
    "link_effects",
    "moved",
    "export",
    "reminders",
    "remind",
    "finalize",
    "contacts_export",
    "migration_trend",
    "topic_counts",
    "counts_refresh",
    "made_ids",
    "made_ids_send",
    "made_ids_profile",
)
for _name in SHARED_CORE:
    FORBIDDEN[f"bridge.core.{_name}"] = ("bridge.core.portal", *KINDS)

# third-party packages that belong to one layer only
LAYER_ONLY = {
    "sqlalchemy": "bridge.db",
    "aiohttp": (
        "bridge.session",
        "bridge.matrix",
        "bridge.app",
        "bridge.core.portal.kind",
        # the failure policy classifies a connection error of any client as transient
        "bridge.core.portal.failures",
        "bridge.core.community",
        "bridge.core.direct",
        "bridge.core.group",
        "bridge.metrics_server",
    ),
    "prometheus_client": ("bridge.metrics", "bridge.metrics_server"),
    # bridge.db.crypto_store: mautrix's SQL crypto store (mautrix.util.async_db) in the bridge
    # database, the one place where SQL and mautrix meet (its docstring says why).
    "mautrix": (
        "bridge.matrix",
        "bridge.core",
        "bridge.commands",
        "bridge.app",
        "bridge.db.crypto_store",
    ),
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


@pytest.mark.parametrize("kind", KINDS)
def test_every_conversation_kind_has_the_same_shape(kind: str) -> None:
    package = BRIDGE.parent.joinpath(*kind.split("."))
    missing = [name for name in KIND_SHAPE if not (package / name).is_file()]
    assert not missing, f"{kind} lacks {missing}"


def test_only_the_composition_root_builds_kinds() -> None:
    wiring = tuple(f"{kind}.wiring" for kind in KINDS)
    builders = {m for m, imported in MODULES if any(i.startswith(wiring) for i in imported)}
    assert builders == {"bridge.app", "bridge.app_kinds"}  # the root and its kinds' wiring


def test_core_top_level_holds_only_shared_pieces() -> None:
    top = {p.stem for p in (BRIDGE / "core").glob("*.py")} - {"__init__"}
    assert top == set(SHARED_CORE)

"""Upgrading config files written for older versions of the bridge.

A config file records the layout it follows as its top-level ``config_version`` (a file
without one predates versioning: version 0). Each entry of :data:`MIGRATIONS` brings a config
tree from the previous version to its own by renaming and removing keys. ``python -m bridge``
writes the upgraded file back keeping the operator's comments
(:func:`bridge.config_file.upgrade_file`); :func:`bridge.config.load_config` applies the same
upgrade in memory to a file that has not been written back.

The functions here work on plain dicts and on ruamel.yaml's round-trip mappings alike; with
the latter, the comment lines that belong to a removed key go with it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

VERSION_KEY = "config_version"
VERSION_COMMENT = "Layout version of this file. The bridge upgrades older files itself; keep it."


class ConfigVersionError(ValueError):
    """The config cannot be upgraded (a version from the future, conflicting keys)."""


@dataclass(frozen=True)
class Remove:
    """Remove the key at dotted ``path``. A file that set it to anything but ``default`` is
    told why the setting went away (``reason``)."""

    path: str
    default: Any
    reason: str


@dataclass(frozen=True)
class Rename:
    """Move the value at dotted path ``old`` to ``new``."""

    old: str
    new: str


@dataclass(frozen=True)
class Migration:
    """The steps that bring a config from ``version - 1`` to ``version``."""

    version: int
    steps: tuple[Remove | Rename, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            Remove(
                "session.onion_requests",
                False,
                "onion routing is not supported; the bridge talks to the service nodes directly",
            ),
            Remove(
                "session.file_server_pubkey",
                "09324794aa9c11948189762d198c618148e9136ac9582068180661208927ef34",
                "nothing in the bridge used it (it held the X25519 key; a self-hosted file "
                "server's Ed25519 key now goes in session.file_server_ed25519_pubkey)",
            ),
            Remove(
                "bridge.migration_deadline",
                "",
                "nothing used it yet (the migration reminders are not built)",
            ),
        ),
    ),
)

CONFIG_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did: ``changes`` (one short phrase each) and ``warnings`` (one
    line each, for settings that stopped having an effect)."""

    from_version: int
    to_version: int
    changes: tuple[str, ...]
    warnings: tuple[str, ...]

    def summary(self, name: str) -> str:
        """One log line describing the upgrade of the file ``name``."""
        done = f": {', '.join(self.changes)}" if self.changes else ""
        return (
            f"Upgraded {name} from config version {self.from_version} to {self.to_version}{done}"
        )


def version_of(tree: MutableMapping[str, Any], newest: int = CONFIG_VERSION) -> int:
    """The config version of ``tree`` (0 without the key), at most ``newest``."""
    version = tree.get(VERSION_KEY, 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ConfigVersionError(f"{VERSION_KEY} must be a whole number, got {version!r}")
    if version > newest:
        raise ConfigVersionError(
            f"{VERSION_KEY} is {version}, but this version of the bridge knows config versions "
            f"up to {newest}: the file was written by a newer bridge; upgrade the bridge"
        )
    return version


def upgrade(
    tree: MutableMapping[str, Any], migrations: tuple[Migration, ...] = MIGRATIONS
) -> Upgrade | None:
    """Bring ``tree`` (a whole config file) to the newest version in place.

    Returns ``None`` if it already was at that version.
    """
    target = migrations[-1].version if migrations else 0
    start = version_of(tree, target)
    if start == target:
        return None
    changes: list[str] = []
    warnings: list[str] = []
    for migration in migrations:
        if migration.version <= start:
            continue
        for step in migration.steps:
            if isinstance(step, Remove):
                value = remove(tree, step.path)
                if value is _MISSING:
                    continue
                changes.append(f"removed {step.path}")
                if value != step.default:
                    warnings.append(f"{step.path} ({value!r}) was removed: {step.reason}")
            elif rename(tree, step.old, step.new):
                changes.append(f"renamed {step.old} to {step.new}")
    _set_version(tree, target)
    return Upgrade(start, target, tuple(changes), tuple(warnings))


# --- key operations ------------------------------------------------------------------------

_MISSING: Any = object()


def _parent(
    tree: MutableMapping[str, Any], path: str, create: bool = False
) -> tuple[MutableMapping[str, Any] | None, str]:
    *sections, key = path.split(".")
    node: Any = tree
    for section in sections:
        if not isinstance(node, MutableMapping):
            break
        if create and section not in node:
            node[section] = CommentedMap() if isinstance(node, CommentedMap) else {}
        node = node.get(section)
    return (node if isinstance(node, MutableMapping) else None), key


def remove(tree: MutableMapping[str, Any], path: str) -> Any:
    """Remove the key at dotted ``path``; returns its value, or ``_MISSING``."""
    parent, key = _parent(tree, path)
    if parent is None or key not in parent:
        return _MISSING
    value = parent[key]
    if isinstance(parent, CommentedMap):
        _drop_comments(parent, key, is_root=parent is tree)
    del parent[key]
    return value


def rename(tree: MutableMapping[str, Any], old: str, new: str) -> bool:
    """Move the value at ``old`` to ``new`` (in place when both are in one mapping)."""
    parent, old_key = _parent(tree, old)
    if parent is None or old_key not in parent:
        return False
    target, new_key = _parent(tree, new, create=True)
    if target is None:
        raise ConfigVersionError(f"cannot rename {old} to {new}: its section is not a mapping")
    if new_key in target:
        raise ConfigVersionError(f"both {old} and its new name {new} are set: keep only {new}")
    if target is not parent:
        target[new_key] = remove(tree, old)
        return True
    position = list(parent).index(old_key)
    value = parent[old_key]
    if isinstance(parent, CommentedMap):
        comments = parent.ca.items.pop(old_key, None)
        del parent[old_key]
        parent.insert(position, new_key, value)
        if comments is not None:
            parent.ca.items[new_key] = comments
    else:
        items = list(parent.items())
        items[position] = (new_key, value)
        parent.clear()
        parent.update(items)
    return True


def _set_version(tree: MutableMapping[str, Any], version: int) -> None:
    if VERSION_KEY in tree:
        tree[VERSION_KEY] = version
    elif isinstance(tree, CommentedMap):
        tree.insert(0, VERSION_KEY, version)
        if not tree.fa.flow_style():
            # The comment of config.example.yaml, after the file's header; a blank line below.
            above = CommentToken(f"# {VERSION_COMMENT}\n", CommentMark(0))
            if tree.ca.comment and isinstance(tree.ca.comment[1], list):
                tree.ca.comment[1].append(above)
            else:
                tree.ca.comment = [None, [above]]
            tree.ca.items[VERSION_KEY] = [None, None, CommentToken("\n\n", CommentMark(0)), None]
    else:
        items = list(tree.items())
        tree.clear()
        tree[VERSION_KEY] = version
        tree.update(items)


# ruamel.yaml keeps the comment lines between two entries on the entry before them: on the
# last scalar of the previous key's value (the key itself for a scalar), as the text after
# the end of that line. Removing a key must therefore drop the comment lines above it (held
# by the previous entry) and keep the lines below it (held by the key itself, or its last
# nested entry), which belong to whatever follows.


Container = CommentedMap | CommentedSeq


def _last_entry(container: Container, key: Any) -> tuple[Container, Any]:
    """The entry holding the comment lines that follow ``container[key]`` in the file."""
    value = container[key]
    while isinstance(value, CommentedMap | CommentedSeq) and len(value) > 0:
        container = value
        key = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1
        value = container[key]
    return container, key


def _slot(container: Container) -> int:
    # Where ruamel.yaml keeps the "after this entry" comment of a mapping entry / list item.
    return 2 if isinstance(container, CommentedMap) else 0


def _after(container: Container, key: Any) -> Any:
    entry = container.ca.items.get(key)
    slot = _slot(container)
    return entry[slot] if entry is not None and len(entry) > slot else None


def _split(text: str) -> tuple[str, str]:
    """An "after" comment: the rest of the entry's own line, and the lines below it."""
    first, newline, rest = text.partition("\n")
    return first + newline, rest


def _drop_comments(mapping: CommentedMap, key: Any, is_root: bool) -> None:
    keys = list(mapping)
    index = keys.index(key)
    own_holder, own_key = _last_entry(mapping, key)
    own = _after(own_holder, own_key)
    below = _split(own.value)[1] if own is not None else ""
    if index == 0:
        # The lines above a first key are held by the mapping itself. In a section they
        # describe the key and go with it; above the first key of the file they are the
        # file's header and stay.
        tokens = [
            CommentToken(line.lstrip(" "), CommentMark(len(line) - len(line.lstrip(" "))))
            for line in below.splitlines(keepends=True)
        ]
        before = mapping.ca.comment[1] if mapping.ca.comment else None
        if isinstance(before, list):
            before[len(before) if is_root else 0 :] = tokens  # shared with the parent's entry
        elif tokens:
            mapping.ca.comment = [None, tokens]
        return
    prev_holder, prev_key = _last_entry(mapping, keys[index - 1])
    prev = _after(prev_holder, prev_key)
    line_end = _split(prev.value)[0] if prev is not None else "\n"
    if prev is not None:
        prev.value = line_end + below
    elif own is not None and below:
        own.value = line_end + below
        entry = prev_holder.ca.items.setdefault(prev_key, [None] * 4)
        entry[_slot(prev_holder)] = own

"""The application data model of config messages and its diffs (docs/groups-v2.md §1.4, §1.5).

Data (``&``) is a ``dict[bytes, BValue]`` whose values are scalars (``int``, ``bytes``), sets
(bt lists of unique scalars, ints first in numeric order then strings in byte order, never
empty) and nested dicts (never empty). Python ``set``/``frozenset`` are accepted by
:func:`normalize` and written as sorted lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TypeAlias

from bridge.session.groups.bencode import BencodeError, BValue

ConfigData: TypeAlias = dict[bytes, BValue]
Scalar: TypeAlias = int | bytes
InputValue: TypeAlias = (
    int | bytes | Sequence[BValue] | AbstractSet[Scalar] | Mapping[bytes, "InputValue"]
)
"""What writers may pass: sets as any sequence or Python set (elements must be scalars)."""

DIFF_SET = b""  # §1.5: scalar assigned (new or changed)
DIFF_REMOVED = b"-"  # §1.5: scalar removed


class ConfigDataError(BencodeError):
    """Config data or a diff violates the data model (§1.4, §1.5)."""


def _set_key(value: Scalar) -> tuple[int, int, bytes]:
    # §1.4: set elements sort ints first (numerically), then strings by raw bytes.
    if isinstance(value, int):
        return (0, value, b"")
    return (1, 0, value)


def sort_set(elements: Iterable[Scalar]) -> list[Scalar]:
    """Return the unique ``elements`` in canonical set order (§1.4)."""
    unique = {(type(e), e) for e in elements}
    return sorted((e for _, e in unique), key=_set_key)


def _is_scalar(value: object) -> bool:
    return isinstance(value, int | bytes) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------- validation


def validate_data(data: Mapping[bytes, BValue], *, top: bool = True) -> None:
    """Reject data that is not canonical per §1.4 (raises :class:`ConfigDataError`)."""
    if not data and not top:
        raise ConfigDataError("empty nested dict in config data")
    for key, value in data.items():
        if isinstance(value, dict):
            validate_data(value, top=False)
        elif isinstance(value, list):
            validate_set(value)
        elif not _is_scalar(value):
            raise ConfigDataError(f"unsupported value for key {key!r}")


def validate_set(elements: list[BValue], *, allow_empty: bool = False) -> None:
    """A set must be non-empty (unless ``allow_empty``), scalar-only and strictly sorted."""
    if not elements and not allow_empty:
        raise ConfigDataError("empty set in config data")
    previous: tuple[int, int, bytes] | None = None
    for element in elements:
        if not isinstance(element, int | bytes):
            raise ConfigDataError("set element is a list or dict")
        key = _set_key(element)
        if previous is not None and key <= previous:
            raise ConfigDataError("set unsorted or has duplicates")
        previous = key


def validate_diff(diff: Mapping[bytes, BValue]) -> None:
    """Check the shape of a §1.5 diff: placeholders, nested dicts, ``[[added], [removed]]``."""
    for key, value in diff.items():
        if isinstance(value, dict):
            validate_diff(value)
        elif isinstance(value, list):
            if len(value) != 2 or not all(isinstance(side, list) for side in value):
                raise ConfigDataError(f"bad set diff for key {key!r}")
            for side in value:
                assert isinstance(side, list)
                validate_set(side, allow_empty=True)
        elif value not in (DIFF_SET, DIFF_REMOVED):
            raise ConfigDataError(f"bad diff placeholder for key {key!r}")


# ---------------------------------------------------------------------------------- normalising


def normalize(data: Mapping[bytes, InputValue]) -> ConfigData:
    """Copy ``data`` into canonical form: sets sorted/unique, empty sets and dicts pruned (§1.4).

    The top-level dict is kept even when empty.
    """
    out: ConfigData = {}
    for key, value in data.items():
        if not isinstance(key, bytes):
            raise ConfigDataError("config data keys must be bytes")
        normalized = _normalize_value(value)
        if normalized is not None:
            out[key] = normalized
    return out


def _normalize_value(value: InputValue) -> BValue | None:
    if isinstance(value, bool):
        raise ConfigDataError("bool is not a config value; use 1 or omit the key")
    if isinstance(value, int | bytes):
        return value
    if isinstance(value, Mapping):
        nested = normalize(value)
        return nested or None
    if isinstance(value, Sequence | AbstractSet):
        scalars = [e for e in value if isinstance(e, int | bytes) and not isinstance(e, bool)]
        if len(scalars) != len(value):
            raise ConfigDataError("sets may only hold ints and bytes")
        elements: list[BValue] = list(sort_set(scalars))
        return elements or None
    raise ConfigDataError(f"unsupported config value {type(value).__name__}")


# ---------------------------------------------------------------------------------- diffs


def diff(old: Mapping[bytes, BValue], new: Mapping[bytes, BValue]) -> ConfigData:
    """The §1.5 diff turning ``old`` into ``new`` (both canonical), with empty parts omitted."""
    out: ConfigData = {}
    for key in sorted(set(old) | set(new)):
        entry = _diff_value(old.get(key), new.get(key))
        if entry is not None:
            out[key] = entry
    return out


def _diff_value(old: BValue | None, new: BValue | None) -> BValue | None:
    if new is None:
        return _removal(old)
    if isinstance(new, dict):
        base = old if isinstance(old, dict) else {}
        # A type change is written as a fresh value of the new type (§1.5).
        return diff(base, new) or None
    if isinstance(new, list):
        base_set = old if isinstance(old, list) else []
        added = [e for e in new if e not in base_set]
        removed = [e for e in base_set if e not in new]
        return [added, removed] if added or removed else None
    if isinstance(old, int | bytes) and type(old) is type(new) and old == new:
        return None
    return DIFF_SET


def _removal(old: BValue | None) -> BValue | None:
    if old is None:
        return None
    if isinstance(old, dict):
        return diff(old, {}) or None
    if isinstance(old, list):
        return [[], list(old)]
    return DIFF_REMOVED

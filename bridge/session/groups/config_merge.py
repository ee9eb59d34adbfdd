"""Merging concurrent admins' config messages (docs/groups-v2.md §1.13 "Merging"; pure).

:func:`merge` takes every valid candidate (the retrieved messages plus the admin's own) and
either adopts the single non-redundant one or replays all diffs into a :class:`Merged` state
with ``seqno = max + 1``. :func:`merged_message` serialises that state (optionally with the
admin's own edit on top, which then lands in ``=``), signed. The same inputs give the same
bytes on every admin, so racing admins store one blob (§1.8).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.session.errors import InvalidInput
from bridge.session.groups.bencode import BValue, encode
from bridge.session.groups.config import LAG, ConfigMessage, LaggedDiff, sign_message
from bridge.session.groups.config_data import (
    DIFF_REMOVED,
    DIFF_SET,
    ConfigData,
    InputValue,
    diff,
    normalize,
    sort_set,
)

__all__ = ["Merged", "merge", "merged_message", "non_redundant"]


@dataclass(frozen=True)
class Merged:
    """A merge of several messages: the replayed data and every replayed diff (§1.13 4)."""

    seqno: int
    data: ConfigData
    replay: tuple[LaggedDiff, ...]  # sorted by (seqno, hash); lag-filtered on output
    sources: tuple[bytes, ...]  # hashes of the merged (non-redundant) messages


def non_redundant(messages: Sequence[ConfigMessage], lag: int = LAG) -> list[ConfigMessage]:
    """Drop duplicates, messages another one lists in ``<``, and those ``lag`` behind (§1.13 2)."""
    if not messages:
        raise InvalidInput("nothing to merge")
    top = max(m.seqno for m in messages)
    included = {(d.seqno, d.hash) for m in messages for d in m.lagged}
    kept: list[ConfigMessage] = []
    seen: set[bytes] = set()
    for m in messages:
        if m.hash in seen or m.order in included or m.seqno + lag <= top:
            continue
        seen.add(m.hash)
        kept.append(m)
    return kept


def merge(messages: Sequence[ConfigMessage], lag: int = LAG) -> ConfigMessage | Merged:
    """The current config after ``messages``: the one left standing, or their merge (§1.13)."""
    kept = non_redundant(messages, lag)
    if len(kept) == 1:
        return kept[0]
    kept.sort(key=lambda m: m.order, reverse=True)
    data = copy.deepcopy(kept[0].data)
    # First insertion wins: a higher (seqno, hash) message's view of a diff takes precedence.
    replay: dict[tuple[int, bytes], tuple[ConfigData, ConfigData]] = {}
    for m in kept:
        replay.setdefault(m.order, (m.data, m.diff))
        for lagged in m.lagged:
            replay.setdefault((lagged.seqno, lagged.hash), (m.data, lagged.diff))
    entries: list[LaggedDiff] = []
    for (seqno, h), (source, change) in sorted(replay.items()):
        _apply(data, change, source)
        entries.append(LaggedDiff(seqno, h, change))
    data = normalize(data)  # prune sets/dicts left empty
    top = max(m.seqno for m in kept)
    return Merged(top + 1, data, tuple(entries), tuple(m.hash for m in kept))


def merged_message(
    merged: Merged,
    data: Mapping[bytes, InputValue] | None,
    group_sk: bytes | None,
    *,
    lag: int = LAG,
) -> bytes:
    """Serialise ``merged`` (seqno unchanged); ``data`` is an edit on top of it, or ``None``."""
    new_data = normalize(merged.data if data is None else data)
    seqno = merged.seqno
    window = [d for d in merged.replay if seqno - lag < d.seqno < seqno]
    message: dict[bytes, BValue] = {
        b"#": seqno,
        b"&": new_data,
        b"<": [[d.seqno, d.hash, d.diff] for d in window],
        b"=": diff(merged.data, new_data),
    }
    return sign_message(encode(message), group_sk)


def _apply(
    data: ConfigData, change: Mapping[bytes, BValue], source: Mapping[bytes, BValue]
) -> None:
    """Apply one diff to ``data`` taking values from ``source`` (libsession's replay rule)."""
    for key, entry in change.items():
        value = source.get(key)
        if value is None or not _same_kind(entry, value):
            # Gone from the source or changed type since: a later diff re-creates it.
            data.pop(key, None)
            continue
        if isinstance(entry, bytes):
            if entry == DIFF_REMOVED:
                data.pop(key, None)
            elif entry == DIFF_SET:
                data[key] = value
        elif isinstance(entry, dict):
            sub = data.get(key)
            if not isinstance(sub, dict):
                sub = data[key] = {}
            assert isinstance(value, dict)
            _apply(sub, entry, value)
        elif isinstance(entry, list):
            _apply_set(data, key, entry)


def _same_kind(entry: BValue, value: BValue) -> bool:
    if isinstance(entry, bytes):
        return isinstance(value, int | bytes)
    if isinstance(entry, dict):
        return isinstance(value, dict)
    return isinstance(value, list)


def _apply_set(data: ConfigData, key: bytes, entry: list[BValue]) -> None:
    current = data.get(key)
    members: list[BValue] = list(current) if isinstance(current, list) else []
    added, removed = [*entry, [], []][:2]
    assert isinstance(added, list) and isinstance(removed, list)
    for element in added:
        if element not in members:
            members.append(element)
    members = [e for e in members if e not in removed]
    scalars = [e for e in members if isinstance(e, int | bytes)]
    data[key] = list(sort_set(scalars))

"""Merging user config messages as their writer (docs/groups-v2.md §1.13 "Merging").

Pure. The merge itself is the one the group admin uses (:mod:`bridge.session.groups.
config_merge`); this module gives the user-config writer its answer in the shape it needs:
the one message to adopt, or the bytes of the merged message it must push.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.session.groups import config_merge
from bridge.session.groups.config import LAG, ConfigMessage

__all__ = ["MergeOutcome", "merge", "non_redundant"]


@dataclass(frozen=True)
class MergeOutcome:
    """``merged`` is ``None`` when ``adopted`` is the single non-redundant candidate."""

    adopted: ConfigMessage
    merged: bytes | None


def non_redundant(candidates: Sequence[ConfigMessage], lag: int = LAG) -> list[ConfigMessage]:
    """Candidates no other one supersedes (§1.13 step 2), best ``(seqno, hash)`` first."""
    kept = config_merge.non_redundant(candidates, lag)
    return sorted(kept, key=lambda m: m.order, reverse=True)


def merge(candidates: Sequence[ConfigMessage], lag: int = LAG) -> MergeOutcome:
    """Merge ``candidates`` (incoming messages plus our own current one), §1.13 steps 1-5.
    User configs are unsigned: the merged message is written without a key."""
    result = config_merge.merge(candidates, lag)
    if isinstance(result, ConfigMessage):
        return MergeOutcome(result, None)
    best = non_redundant(candidates, lag)[0]
    return MergeOutcome(best, config_merge.merged_message(result, None, None, lag=lag))

"""What one group poll cycle sends (docs/groups-v2.md §6.2): which groups are due, the expiry
keep-alive of their keys/config messages, and the packing into ``batch`` requests.

**Schedule.** Desktop (``swarmPolling.ts`` ``getPollingTimeout``, ``SWARM_POLLING_TIMEOUT``)
polls a group every ~5 s while it was active in the last 2 days, every minute while active in
the last 7 days, and every 2 minutes otherwise. Whenever it polls a group it asks for **all
five** namespaces (``getNamespacesToPollFrom``: -11, 11, 13, 14, 12) — it never skips keys or
configs for quiet groups, and skipping them would break the "keys last, in the same batch"
rule that lets a message encrypted with a brand-new key decrypt (§6.2, §6.3, risk #10). So
the saving is in *how often* a quiet group is polled, not in namespaces per poll:
:class:`PollSchedule` (:data:`DESKTOP_SCHEDULE`; :data:`EVERY_CYCLE` polls every group every
cycle).

**Keep-alive.** Keys, Info and Members messages are stored with a 30-day TTL (§6.1); every
client with write access extends the ones still in use — the kept keys generations'
(§3.6 ``current_hashes``) and the storage hashes carrying the current Info/Members (§1.12 step
4) — with ``expire`` (``extend``, expiry now + 30 days), which a member's subaccount may do
with the WRITE flag (§5.4 2; desktop issues READ|WRITE, §5.1). Desktop sends it on every poll
(§6.2); newer desktop (``configTtlExtensionThrottle.ts``) only once an hour per swarm after a
*confirmed* extension, since extending to "now + 30 days" more often gains nothing. We do the
latter (:attr:`PollSchedule.extend_every_ms`). A member whose token lacks WRITE cannot keep
the messages alive; that is up to the other members and the admins.

**Packing.** A node takes at most 20 sub-requests per ``batch`` (session-protocol §6.10). A
polled group's five retrieves must share one batch (keys last, §6.2), so a batch carries 4
groups; the one-sub-request ``expire`` calls (one per group: each is signed for its own
account) fill the remaining slots and then batches of their own — never more batches than
``ceil(sub-requests / 20)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bridge.session.groups.group_state import NS_INFO, NS_MEMBERS, POLL_NAMESPACES, GroupState
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call
from bridge.session.snode.rpc import BATCH_MAX

__all__ = [
    "CONFIG_TTL_MS",
    "DESKTOP_SCHEDULE",
    "EVERY_CYCLE",
    "GROUPS_PER_BATCH",
    "Batch",
    "PollSchedule",
    "RequestSigner",
    "expire_call",
    "keepalive_hashes",
    "pack",
]

T = TypeVar("T")

#: Builds signed params: ``(method, namespace, timestamp, **fields)`` — e.g. a partial of
#: :func:`~bridge.session.groups.subaccount.member_request_params` (member) or
#: :func:`~bridge.session.groups.subaccount.admin_request_params` (admin).
RequestSigner = Callable[..., dict[str, Any]]

#: Whole groups whose retrieves fit in one batch (20 sub-requests, 5 namespaces each).
GROUPS_PER_BATCH = BATCH_MAX // len(POLL_NAMESPACES)
#: TTL of keys/config messages and of their extension: 30 days (§6.1, §6.2).
CONFIG_TTL_MS = 30 * 86_400_000
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class PollSchedule:
    """How often to poll a group given its last activity, and how often to extend expiries.

    A group is *due* when at least :meth:`interval_ms` passed since its last poll; 0 means
    every cycle (the caller's poll interval, ~5 s like desktop's ACTIVE timeout).
    """

    active_window_ms: int = 2 * _DAY_MS
    medium_window_ms: int = 7 * _DAY_MS
    medium_interval_ms: int = 60_000
    inactive_interval_ms: int = 120_000
    extend_every_ms: int = 3_600_000

    def interval_ms(self, last_activity_ms: int, now_ms: int) -> int:
        """Minimum time between two polls of a group last active at ``last_activity_ms``."""
        quiet = now_ms - last_activity_ms
        if quiet <= self.active_window_ms:
            return 0
        if quiet <= self.medium_window_ms:
            return self.medium_interval_ms
        return self.inactive_interval_ms


#: Desktop's tiers: every cycle (≤ 2 days quiet), 1 min (≤ 7 days), 2 min; extend hourly.
DESKTOP_SCHEDULE = PollSchedule()
#: Every group every cycle (tests, or a bridge that wants minimum latency everywhere).
EVERY_CYCLE = PollSchedule(medium_interval_ms=0, inactive_interval_ms=0)


def keepalive_hashes(state: GroupState) -> list[str]:
    """Storage hashes to keep alive: kept keys generations (§3.6) + current configs (§1.12)."""
    hashes = set(state.keyring.current_hashes())
    for ns in (NS_INFO, NS_MEMBERS):
        hashes |= state.configs[ns].storage_hashes
    return sorted(hashes)


def expire_call(sign: RequestSigner, hashes: Sequence[str]) -> Call:
    """``expire`` with ``extend`` to now + 30 days for ``hashes`` (§6.2, §6.8), signed by
    ``sign`` (subaccount or admin)."""
    messages = list(hashes)

    def params(_node: ServiceNode, now: int) -> dict[str, Any]:
        fields = {"messages": messages, "expiry": now + CONFIG_TTL_MS, "extend": True}
        return sign("expire", None, now, **fields)

    return Call("expire", params)


@dataclass
class Batch(Generic[T]):
    """One batch of a swarm: groups polled (5 retrieves each, in order) then expires."""

    polls: list[T]
    expires: list[T]

    @property
    def size(self) -> int:
        """Sub-requests in this batch."""
        return len(self.polls) * len(POLL_NAMESPACES) + len(self.expires)


def pack(polls: Sequence[T], expires: Sequence[T], limit: int = BATCH_MAX) -> list[Batch[T]]:
    """Pack one swarm's due polls and expires into the fewest batches of ``limit``.

    Polls are chunked whole (5 sub-requests each); expires fill the free slots, then batches
    of their own. Optimal since the poll size divides the limit.
    """
    per = max(1, limit // len(POLL_NAMESPACES))
    batches = [Batch(list(polls[i : i + per]), []) for i in range(0, len(polls), per)]
    queue = list(expires)
    for batch in batches:
        free = limit - batch.size
        batch.expires, queue = queue[:free], queue[free:]
    while queue:
        batches.append(Batch([], queue[:limit]))
        queue = queue[limit:]
    return batches

"""Groups v2: decrypt+verify cost per group message against the bare crypto floor, and HTTP
requests/bytes per poll cycle for 1, 10 and 100 groups on the devnet.

Run: ``.venv/bin/python -m bench.bench_groups``. Prints; never asserts.

* Floor: one XChaCha20-Poly1305 open + one Ed25519 verify of the same sizes — the two
  primitives a group message needs (docs/groups-v2.md §4.2); the ratio shows what bencode, zstd,
  Envelope/Content parsing and the X25519 conversion add.
* Poll cycle: one member polling N groups; a node takes at most 20 sub-requests per batch, so
  the expected count is ``sum over swarms of ceil(groups_on_swarm / 4)`` batches per cycle,
  ``ceil(6 n / 20)`` in the hourly cycle that extends expiries, and 1/24 of the active count
  on average for groups quiet for over a week (desktop polls those every 2 minutes).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import nacl.bindings as sodium
from nacl.signing import SigningKey

from bridge.session.groups.group_messages import decrypt_group_message, encrypt_group_message
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member_send import request_signer
from bridge.session.groups.members import Member, SendStatus
from bridge.session.groups.poll_plan import DESKTOP_SCHEDULE, GROUPS_PER_BATCH
from bridge.session.groups.poller import GroupPoller
from bridge.session.groups.store import MemoryGroupStore
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from tests.sessionnet.dm_setup import dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.storage import StorageNode

ROUNDS = 2000
GROUP_COUNTS = (1, 10, 100)
CYCLES = 10
QUIET_CYCLES = 24  # 2 minutes of 5-s cycles


def _per_op_us(fn: object, rounds: int = ROUNDS) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def bench_decrypt() -> None:
    """Per-message decrypt+verify against the bare primitives."""
    group_pk = bytes(sodium.crypto_sign_seed_keypair(bytes(32))[0])
    key = bytes(range(32))
    sender = Identity.generate()
    text = "a typical chat message of about this length, with some words " * 2
    blob = encrypt_group_message(sender, group_pk, key, VisibleMessage(body=text), 1_700_000_000)
    full = _per_op_us(lambda: decrypt_group_message(blob, [key], group_pk))

    nonce, box = blob[:24], blob[24:]
    signing = SigningKey.generate()
    payload = bytes(len(box) - 16 - 100)
    signed = signing.sign(payload + group_pk)
    verify_key = signing.verify_key

    def floor() -> None:
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(box, None, nonce, key)
        verify_key.verify(signed)

    bare = _per_op_us(floor)
    print(f"group message: {len(blob)} bytes stored")
    print(f"  decrypt_group_message   {full:8.1f} µs/msg")
    print(f"  floor (XChaCha + verify) {bare:7.1f} µs/msg   ratio {full / bare:.2f}x")


class _Clock:
    """The poller's scheduling clock: network time plus a hand-moved offset."""

    def __init__(self, base: Callable[[], int]) -> None:
        self.base, self.offset = base, 0

    def __call__(self) -> int:
        return self.base() + self.offset


async def bench_poll() -> None:
    """Requests and bytes per poll cycle of one member in N groups.

    * cycle 1: discovers keys/configs; cycle 2: + the hourly expire of each group (6 sub-
      requests per group, ``ceil(6n/20)`` batches per swarm); then steady cycles (5 per group,
      ``ceil(n/4)`` per swarm) for active groups;
    * quiet groups (> 7 days without messages) under desktop's schedule: polled every 2 min,
      i.e. once per 24 cycles of 5 s — the average requests per cycle over 2 minutes.
    """
    async with dm_world() as world:
        admin_dm = await world.client(start=False)
        member = Identity.generate()
        for count in GROUP_COUNTS:
            store = MemoryGroupStore()
            clock = _Clock(world.snode.clock.now_ms)
            poller = GroupPoller(world.snode, store, schedule=DESKTOP_SCHEDULE, now_ms=clock)
            per_swarm: dict[int, int] = {}
            signers = []
            for i in range(count):
                admin = await DevnetGroupAdmin.create(
                    world.snode, admin_dm, Identity.generate(), f"g{i}"
                )
                admin.members[member.session_id] = Member(
                    member.session_id, invite=SendStatus.SENT
                )
                await admin.push(rekey=True)
                await admin.post(VisibleMessage(body="hello"))
                auth_data = make_member_auth_data(admin.group.seed, member.session_id)
                signer = request_signer(member, admin.group_id, auth_data=auth_data)
                signers.append((admin.group_id, signer))
                await poller.add(GroupState(admin.group_id, member), signer)
                swarm = world.net.swarm_for(admin.group_id.value).swarm_id
                per_swarm[swarm] = per_swarm.get(swarm, 0) + 1
            nodes = world.net.nodes
            rows = []
            for label in ("first cycle", "+ expire"):
                snap = _snap(nodes)
                start = time.perf_counter()
                events = await poller.poll_once()
                ms = (time.perf_counter() - start) * 1000
                for event in events:
                    if hasattr(event, "hash"):
                        await poller.ack(event)  # type: ignore[arg-type]
                rows.append((label, _diff(nodes, snap), ms))
            snap = _snap(nodes)
            start = time.perf_counter()
            for _ in range(CYCLES):
                await poller.poll_once()
            idle_ms = (time.perf_counter() - start) * 1000 / CYCLES
            rows.append(("active idle", [v / CYCLES for v in _diff(nodes, snap)], idle_ms))
            # The same groups 10 days later without a message: desktop polls them every 2 min.
            clock.offset = 10 * 86_400_000
            quiet = GroupPoller(world.snode, store, schedule=DESKTOP_SCHEDULE, now_ms=clock)
            for gid, signer in signers:
                state = GroupState(gid, member)
                await quiet.add(state, signer, active_ms=clock() - 10 * 86_400_000)
            await quiet.poll_once()
            await quiet.poll_once()  # the extensions
            snap = _snap(nodes)
            start = time.perf_counter()
            for _ in range(QUIET_CYCLES):
                clock.offset += 5_000
                await quiet.poll_once()
            quiet_ms = (time.perf_counter() - start) * 1000 / QUIET_CYCLES
            rows.append(
                ("quiet (avg/5 s)", [v / QUIET_CYCLES for v in _diff(nodes, snap)], quiet_ms)
            )
            expected = sum(math.ceil(n / GROUPS_PER_BATCH) for n in per_swarm.values())
            with_expire = sum(math.ceil(6 * n / 20) for n in per_swarm.values())
            print(
                f"{count:4d} groups ({len(per_swarm)} swarms): expected {expected} req/cycle "
                f"active, {with_expire} in an expire cycle, {expected / 24:.2f} quiet"
            )
            for label, (req, up, down), ms in rows:
                print(
                    f"     {label:16s} {req:6.2f} req  {up / 1024:8.1f} KiB up "
                    f"{down / 1024:8.1f} KiB down  {ms:7.1f} ms"
                )


def _snap(nodes: list[StorageNode]) -> list[tuple[int, int, int]]:
    return [(n.http_requests["batch"], n.bytes_in, n.bytes_out) for n in nodes]


def _diff(nodes: list[StorageNode], snap: list[tuple[int, int, int]]) -> list[float]:
    now = [(n.http_requests["batch"], n.bytes_in, n.bytes_out) for n in nodes]
    return [float(sum(a[i] - b[i] for a, b in zip(now, snap, strict=True))) for i in range(3)]


def main() -> None:
    """Run both benchmarks."""
    bench_decrypt()
    asyncio.run(bench_poll())


if __name__ == "__main__":
    main()

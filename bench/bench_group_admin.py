"""Groups v2 admin: rekey cost for 100 members against the libsodium floor, and create +
invite 50 members end to end on the devnet (docs/groups-v2.md §3.4, §7.1, §7.2).

Run: ``.venv/bin/python -m bench.bench_group_admin``. Prints; never asserts.

* Floor, measured in the same run: per member one X25519 scalar multiplication and one
  XChaCha20-Poly1305 encryption of a 32-byte key (what each ``k`` entry minimally costs), plus
  one Ed25519 signature for the message — the primitives a rekey cannot avoid.
* Rekey: ``GroupKeyring.rekey`` for 100 members (key derivation, member keys, 135 entries
  with junk, bencode, signature), then the admin's whole removal of one member of 100 on the
  devnet (kicked note, revoke, rekey, Info + Members re-encrypted and pushed).
"""

from __future__ import annotations

import asyncio
import os
import time

import nacl.bindings as sodium
from nacl.signing import SigningKey

from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.keyring import GroupKeyring
from bridge.session.groups.keys import GroupKeyPair
from bridge.session.groups.members import Member, Members
from bridge.session.keys import Identity
from bridge.session.messages import Profile
from tests.sessionnet.dm_setup import dm_world

MEMBERS = 100
INVITES = 50
ROUNDS = 20


def _floor_ms(n: int) -> float:
    keys = [os.urandom(32) for _ in range(n)]
    scalar, nonce, sk = os.urandom(32), os.urandom(24), SigningKey(os.urandom(32))
    start = time.perf_counter()
    for _ in range(ROUNDS):
        for pk in keys:
            shared = sodium.crypto_scalarmult(scalar, pk)
            sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(shared, None, nonce, shared)
        sk.sign(b"x" * (48 * n))
    return (time.perf_counter() - start) / ROUNDS * 1000


def _rekey_ms(n: int) -> float:
    group = GroupKeyPair(os.urandom(32))
    keyring = GroupKeyring(group.public, group=group)
    members = [Identity.generate().session_id for _ in range(n)]
    start = time.perf_counter()
    for _ in range(ROUNDS):
        keyring.rekey(members)
    return (time.perf_counter() - start) / ROUNDS * 1000


async def _devnet() -> None:
    async with dm_world() as world:
        identity = Identity.generate()
        dm = await world.client(identity, start=False, profile=Profile("Admin"))
        start = time.perf_counter()
        admin = await GroupAdmin.create(world.snode, identity, "Bench", dm=dm)
        invitees = [Identity.generate().session_id for _ in range(INVITES)]
        for sid in invitees:
            await admin.invite(sid, "m")
        invite_s = time.perf_counter() - start
        print(f"create + invite {INVITES} members (devnet, 1:1 invites): {invite_s:.2f} s")
        print(f"  per invite {invite_s / INVITES * 1000:.1f} ms")
        # Grow the group to MEMBERS (the invitees plus accepted extras), then remove one.
        missing = MEMBERS - len(admin.members)
        extra = [Member(Identity.generate().session_id, invite=None) for _ in range(missing)]
        full = Members(tuple(sorted([*admin.members, *extra], key=lambda m: m.session_id.raw)))
        await admin._push(None, full, rekey=True)
        victim = next(m.session_id for m in admin.members if m.session_id != identity.session_id)
        start = time.perf_counter()
        await admin.remove([victim])
        remove_ms = (time.perf_counter() - start) * 1000
        print(f"remove 1 of {len(full)} with rekey (devnet, end to end): {remove_ms:.1f} ms")


def main() -> None:
    floor = _floor_ms(MEMBERS)
    rekey = _rekey_ms(MEMBERS)
    print(f"rekey for {MEMBERS} members: {rekey:8.2f} ms")
    print(
        f"  floor ({MEMBERS} X25519 + XChaCha20 + 1 sign): {floor:8.2f} ms",
        f"  ratio {rekey / floor:.2f}x",
    )
    asyncio.run(_devnet())


if __name__ == "__main__":
    main()

"""GroupAdmin without a network: what it pushes, checked against the admin-side vectors of
``tests/vectors/groups-v2.json`` (docs/groups-v2.md §3.4, §3.5, §1.13, §4.4, §5.5, §7.11).

A recording stand-in for :class:`SnodeClient` captures every request of a ``sequence`` with
fixed timestamps, so the bytes the admin would store can be compared with the vectors.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from typing import Any, cast

import nacl.bindings as sodium
import pytest
from nacl.signing import VerifyKey

from bridge.ids import SessionID
from bridge.session.errors import SessionError
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.admin_configs import AdminConfig
from bridge.session.groups.config import INFO_DOMAIN, parse_message
from bridge.session.groups.group_state import NS_INFO, NS_KEYS, NS_MEMBERS, NS_REVOKED
from bridge.session.groups.info import Info
from bridge.session.groups.keys import parse_keys_message
from bridge.session.groups.members import Member, Members, Removal
from bridge.session.groups.multi_encrypt import decode_simple, make_kicked_note, read_kicked_note
from bridge.session.keys import Identity
from bridge.session.snode import auth
from bridge.session.snode.results import Call, SubResult
from bridge.session.snode.rpc import SnodeClient
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
REKEY, SUPPLEMENT = CASES["keys_rekey_gen0"], CASES["keys_supplement"]
FIRST, KICKED = CASES["group_info_first_push"], CASES["kicked_message"]
SIGS, REVOKE = CASES["admin_signatures"], CASES["revoke_subaccount_signature"]
SEED = bytes.fromhex(REKEY["group_seed"])
NOW = 1_700_000_000_000


@dataclass
class _Clock:
    ticks: itertools.count[int] = field(default_factory=lambda: itertools.count(NOW))

    def now_ms(self) -> int:
        return NOW

    def next_ms(self) -> int:
        return next(self.ticks)


@dataclass
class _Recorder:
    """Answers every call with 200 and remembers its params (retrieves return nothing)."""

    clock: _Clock = field(default_factory=_Clock)
    sequences: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def sent_clock(self) -> _Clock:
        return self.clock

    async def batch(
        self, account: str, requests: list[Call], *, sequence: bool = False
    ) -> tuple[None, list[SubResult]]:
        params = [{"method": c.method, **c.params(cast(Any, None), NOW)} for c in requests]
        if sequence:
            self.sequences.append(params)
        return None, [SubResult(200, _body(account, p)) for p in params]

    async def call(self, account: str, call: Call) -> tuple[None, dict[str, Any]]:
        _, (result,) = await self.batch(account, [call])
        return None, result.body

    def stores(self, ns: int) -> list[bytes]:
        return [
            base64.b64decode(p["data"])
            for seq in self.sequences
            for p in seq
            if p["method"] == "store" and p["namespace"] == ns
        ]


def _body(account: str, p: dict[str, Any]) -> dict[str, Any]:
    if p["method"] == "retrieve":
        return {"messages": []}
    if p["method"] == "store":
        h = auth.message_hash(account, p["namespace"], base64.b64decode(p["data"]))
        return {"swarm": {"node": {"hash": h}}}
    return {}


def _admin(recorder: _Recorder) -> GroupAdmin:
    return GroupAdmin(cast(SnodeClient, recorder), Identity.generate(), SEED)


def _sids(values: list[str]) -> list[SessionID]:
    return [SessionID.parse(v) for v in values]


async def test_rekey_pushes_the_vector_keys_message_first_then_configs() -> None:
    recorder = _Recorder()
    admin = _admin(recorder)
    members = Members(tuple(Member(s, invite=None) for s in _sids(REKEY["members_sorted"])))
    await admin._push(Info(name="x"), members, rekey=True)
    (sequence,) = recorder.sequences
    assert [(p["method"], p["namespace"]) for p in sequence] == [
        ("store", NS_KEYS),
        ("store", NS_INFO),
        ("store", NS_MEMBERS),
    ]
    (keys,) = recorder.stores(NS_KEYS)
    assert keys.hex() == REKEY["expected_keys_message"]
    assert len(keys) == REKEY["expected_keys_message_len"]
    assert admin.keyring.encryption_key().hex() == REKEY["expected_group_enc_key"]
    for p in sequence:  # every request signed by the group key itself (§5.4)
        VerifyKey(admin.group.public).verify(
            auth.signed_message("store", p), base64.b64decode(p["signature"])
        )


async def test_invite_with_history_pushes_the_vector_supplement_before_the_rekey() -> None:
    recorder = _Recorder()
    admin = _admin(recorder)
    gen0 = _sids(REKEY["members_sorted"])
    await admin._push(None, Members(tuple(Member(s, invite=None) for s in gen0)), rekey=True)
    # The vector's key list is generation 0 stored at t = 1700000000000 (= NOW here).
    assert [(k.generation, k.key.hex(), k.timestamp) for k in admin.keyring.keys] == [
        (0, SUPPLEMENT["keys"][0]["k"], SUPPLEMENT["keys"][0]["t"])
    ]
    (newcomer,) = _sids(SUPPLEMENT["sids"])
    await admin.invite(newcomer, "New", history=True)
    invite_sequence = recorder.sequences[1]
    kinds = [(p["method"], p.get("namespace")) for p in invite_sequence]
    assert kinds[:2] == [("store", NS_KEYS), ("store", NS_KEYS)]
    assert ("unrevoke_subaccount", None) in kinds
    supplement = base64.b64decode(invite_sequence[0]["data"])
    assert supplement.hex() == SUPPLEMENT["expected_message"]
    assert parse_keys_message(supplement, admin.group.public).is_supplement
    entry = admin.members.get(newcomer)
    assert entry is not None and entry.supplement and entry.invite is not None


def test_first_info_push_of_an_admin_config_matches_the_vector() -> None:
    public, secret = sodium.crypto_sign_seed_keypair(bytes.fromhex(FIRST["group_seed"]))
    cfg = AdminConfig(INFO_DOMAIN, public)
    assert cfg.current.hash.hex() == FIRST["seqno0_empty_hash"]
    bt = cfg.write({b"n": b"Determinism Group", b"E": 3600, b"c": 1682529839}, secret)
    assert bt.hex() == FIRST["expected_signed_plaintext"]
    cfg.pushed(bt, {"h1"})
    assert cfg.current.hash.hex() == FIRST["expected_signed_plaintext_hash"]
    assert parse_message(bt, public).seqno == 1


def test_admin_signatures_match_the_vector() -> None:
    admin = _admin(_Recorder())
    for text, signature in SIGS["signed_ascii_to_signature"].items():
        assert admin.sign(text).hex() == signature


def test_revoke_request_signature_matches_the_vector() -> None:
    admin = _admin(_Recorder())
    member = SessionID.parse(KICKED["removed_session_id"])
    call = admin._tokens("revoke_subaccount", [member])
    params = call.params(cast(Any, None), REVOKE["timestamp"])
    assert params["revoke"] == [REVOKE["token"]]
    assert params["signature"] == REVOKE["expected_signature_b64"]


async def test_removal_job_sends_kicked_note_revoke_and_rekeys_without_the_member() -> None:
    recorder = _Recorder()
    admin = _admin(recorder)
    gone, kept = _sids(REKEY["members_sorted"])  # the vectors remove the first one
    both = Members((Member(gone, invite=None), Member(kept, invite=None)))
    await admin._push(None, both, rekey=True)
    marked = Members(
        (Member(gone, invite=None, removal=Removal.MEMBER), Member(kept, invite=None))
    )
    await admin._push(None, marked)
    await admin.run_removals()
    job, rekey = recorder.sequences[-2], recorder.sequences[-1]
    assert [(p["method"], p.get("namespace")) for p in job] == [
        ("store", NS_REVOKED),
        ("revoke_subaccount", None),
    ]
    assert job[1]["revoke"] == [REVOKE["token"]]
    note = base64.b64decode(job[0]["data"])
    # The vector's note is for this same member at generation 1 with a fixed nonce; ours is at
    # generation 0 (the one current before the removal) with a random nonce: same layout.
    nonce, entries = decode_simple(note)
    assert len(note) == len(bytes.fromhex(KICKED["expected_message"]))
    assert len(nonce) == 24 and len(entries) == 1
    assert rekey[0]["namespace"] == NS_KEYS
    assert admin.keyring.current_generation == 1
    assert [m.session_id for m in admin.members] == [kept]
    keys = parse_keys_message(base64.b64decode(rekey[0]["data"]), admin.group.public)
    assert keys.generation == 1


def test_kicked_note_reads_back_for_the_removed_member_only() -> None:
    member = Identity.generate()
    other = Identity.generate()

    note = make_kicked_note(SEED, [member.session_id], 3)
    public = bytes(sodium.crypto_sign_seed_keypair(SEED)[0])
    assert read_kicked_note(note, member, public).generation == 3
    with pytest.raises(SessionError):
        read_kicked_note(note, other, public)

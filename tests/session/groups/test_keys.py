"""groups::Keys: parsing, member keys, the writer and the key list (docs/groups-v2.md §3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.ids import GroupID, SessionID
from bridge.session.errors import SessionError
from bridge.session.groups import bencode
from bridge.session.groups.keyring import KEY_EXPIRY_MS, GroupKeyring, NoGroupKey
from bridge.session.groups.keys import (
    KEY_PADDING_MULTIPLE,
    GroupKey,
    GroupKeyPair,
    KeysMessageError,
    KeysSignatureError,
    MalformedKeysMessage,
    admin_key,
    decrypt_keys,
    make_rekey,
    make_supplement,
    member_key,
    member_key_for,
    parse_keys_message,
)
from bridge.session.groups.multi_encrypt import (
    aead_encrypt,
    blake2b,
    ed25519_pk_to_x25519,
    multi_encrypt_key,
)
from bridge.session.keys import Identity
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
IDS: dict[str, Any] = CASES["ids_from_seeds"]
REKEY: dict[str, Any] = CASES["keys_rekey_gen0"]
SUPPLEMENT: dict[str, Any] = CASES["keys_supplement"]

GROUP = GroupKeyPair(bytes.fromhex(REKEY["group_seed"]))
USERS = [Identity.from_seed(bytes.fromhex(seed)) for seed in IDS["user_seed_to_session_id"]]
MEMBERS = [u for u in USERS if u.session_id.value in REKEY["members_sorted"]]
OUTSIDER = USERS[-1]
DAY = 24 * 60 * 60 * 1000


def _resign(group: GroupKeyPair, fields: dict[bytes, bencode.BValue]) -> bytes:
    unsigned = bencode.encode({k: v for k, v in fields.items() if k != b"~"})
    return bencode.append_signature(unsigned, group.sign(bencode.signing_prefix(unsigned)))


def _fields(message: bytes) -> dict[bytes, bencode.BValue]:
    return bencode.decode_dict(message)


# ------------------------------------------------------------------ upstream ids vector


def test_vector_ids_from_seeds() -> None:
    group = GroupKeyPair(bytes.fromhex(IDS["group_seed"]))
    assert group.public.hex() == IDS["group_ed25519_pubkey"]
    assert GroupID.from_key(group.public).value == IDS["group_id"]
    info_user = Identity.from_seed(bytes.fromhex(IDS["info_test_seed"]))
    assert info_user.ed25519_public.hex() == IDS["info_test_ed25519_pubkey"]
    for user, expected in zip(USERS, IDS["user_seed_to_session_id"].values(), strict=True):
        assert user.session_id.value == expected


# ------------------------------------------------------------------ rekey (self-computed)


def test_rekey_gen0_vector() -> None:
    members = [SessionID(s) for s in REKEY["members_sorted"]]
    rekey = make_rekey(GROUP, reversed(members), REKEY["generation"])  # order does not matter
    assert rekey.message.hex() == REKEY["expected_keys_message"]
    assert len(rekey.message) == REKEY["expected_keys_message_len"]
    assert rekey.key.hex() == REKEY["expected_group_enc_key"]
    assert admin_key(GROUP.seed).hex() == REKEY["admin_key"]
    assert blake2b(GROUP.seed, 32, key=b"SessionGroupKeySeed").hex() == REKEY["h2_seed_hash"]
    parsed = parse_keys_message(rekey.message, GROUP.public)
    assert parsed.nonce.hex() == REKEY["expected_nonce"]
    assert parsed.generation == 0 and not parsed.is_supplement


def test_risk9_member_key_both_sides() -> None:
    # The vector's "second member" is the second user seed of ids_from_seeds (05c5ba41…).
    member = USERS[1]
    assert (
        member.session_id.value
        == "05c5ba413c336f2fe1fb9a2c525f8a86a412a1db128a7841b4e0e217fa9eb7fd5e"
    )
    expected = REKEY["member_key_for_second_member"]
    assert member_key_for(GROUP, member.session_id).hex() == expected
    assert member_key(member, GROUP.public).hex() == expected
    # The order is shared || A'(group) || B(member), with the X25519 form of the group key:
    # the swapped order, or the raw Ed25519 group key, give other keys.
    a_x = ed25519_pk_to_x25519(GROUP.public)
    domain = b"SessionGroupKeyMemberKey"
    swapped = multi_encrypt_key(member.x25519_secret, a_x, member.x25519_public, a_x, domain)
    raw_ed = multi_encrypt_key(
        member.x25519_secret, a_x, GROUP.public, member.x25519_public, domain
    )
    assert expected not in (swapped.hex(), raw_ed.hex())


def test_risk2_k_is_padded_to_45_and_every_member_finds_the_key() -> None:
    parsed = parse_keys_message(bytes.fromhex(REKEY["expected_keys_message"]), GROUP.public)
    assert len(parsed.member_entries) == KEY_PADDING_MULTIPLE == 45
    for member in MEMBERS:
        found = decrypt_keys(parsed, 1234, identity=member, group_ed25519_pk=GROUP.public)
        assert found == [GroupKey(0, 1234, bytes.fromhex(REKEY["expected_group_enc_key"]))]
    assert decrypt_keys(parsed, 1, identity=OUTSIDER, group_ed25519_pk=GROUP.public) == []
    assert decrypt_keys(parsed, 1, group=GROUP)[0].key.hex() == REKEY["expected_group_enc_key"]


@pytest.mark.parametrize("total", [2, 3, 75, 90])
def test_risk2_reader_accepts_other_paddings(total: int) -> None:
    fields = _fields(bytes.fromhex(REKEY["expected_keys_message"]))
    entries = fields[b"k"]
    assert isinstance(entries, list)
    entries = (entries * 3)[:total]  # real entries first, then junk (old 75 or none)
    message = _resign(GROUP, {**fields, b"k": entries})
    parsed = parse_keys_message(message, GROUP.public)
    assert len(parsed.member_entries) == total
    for member in MEMBERS:
        assert decrypt_keys(parsed, 5, identity=member, group_ed25519_pk=GROUP.public)


def test_larger_member_lists_pad_to_multiples_of_45() -> None:
    people = [Identity.from_seed(bytes([i]) * 32).session_id for i in range(46)]
    for count, expected in ((45, 45), (46, 90), (1, 45)):
        parsed = parse_keys_message(make_rekey(GROUP, people[:count], 3).message, GROUP.public)
        assert len(parsed.member_entries) == expected


# ------------------------------------------------------------------ supplements (§3.5)


def test_supplement_vector() -> None:
    keys = [GroupKey(k["g"], k["t"], bytes.fromhex(k["k"])) for k in SUPPLEMENT["keys"]]
    sids = [SessionID(s) for s in SUPPLEMENT["sids"]]
    message = make_supplement(GROUP, sids, keys)
    assert message.hex() == SUPPLEMENT["expected_message"]
    parsed = parse_keys_message(message, GROUP.public)
    assert parsed.is_supplement and parsed.generation == 0
    member = next(u for u in USERS if u.session_id in sids)
    assert decrypt_keys(parsed, 99, identity=member, group_ed25519_pk=GROUP.public) == keys
    assert decrypt_keys(parsed, 99, identity=OUTSIDER, group_ed25519_pk=GROUP.public) == []


def test_supplement_carries_every_key_with_its_timestamp() -> None:
    keys = [
        GroupKey(2, 300, bytes([2]) * 32),
        GroupKey(0, 100, bytes(32)),
        GroupKey(1, 200, b"1" * 32),
    ]
    message = make_supplement(GROUP, [USERS[3].session_id, USERS[4].session_id], keys)
    parsed = parse_keys_message(message, GROUP.public)
    assert parsed.generation == 2
    for user in USERS[3:5]:
        found = decrypt_keys(parsed, 7, identity=user, group_ed25519_pk=GROUP.public)
        assert found == sorted(keys)


def test_supplement_needs_keys_and_recipients() -> None:
    with pytest.raises(SessionError):
        make_supplement(GROUP, [], [GroupKey(0, 1, bytes(32))])
    with pytest.raises(SessionError):
        make_supplement(GROUP, [USERS[0].session_id], [])


# ------------------------------------------------------------------ rejections


def _valid() -> dict[bytes, bencode.BValue]:
    return _fields(bytes.fromhex(REKEY["expected_keys_message"]))


@pytest.mark.parametrize(
    "change",
    [
        {b"#": b"short"},
        {b"G": -1},
        {b"G": b"0"},
        {b"K": bytes(47)},
        {b"k": [bytes(48), bytes(47)]},
        {b"k": b"not a list"},
        {b"k": [1]},
        {b"+": [bytes(67)]},
    ],
)
def test_invalid_layouts_are_rejected(change: dict[bytes, bencode.BValue]) -> None:
    with pytest.raises(MalformedKeysMessage):
        parse_keys_message(_resign(GROUP, {**_valid(), **change}), GROUP.public)


@pytest.mark.parametrize("missing", [b"#", b"G", b"K", b"k"])
def test_missing_fields_are_rejected(missing: bytes) -> None:
    fields = {k: v for k, v in _valid().items() if k != missing}
    with pytest.raises(MalformedKeysMessage):
        parse_keys_message(_resign(GROUP, fields), GROUP.public)


def test_signature_is_checked() -> None:
    other = GroupKeyPair(bytes(32))
    with pytest.raises(KeysSignatureError):
        parse_keys_message(_resign(other, _valid()), GROUP.public)
    message = bytearray.fromhex(REKEY["expected_keys_message"])
    message[-10] ^= 1
    with pytest.raises(KeysSignatureError):
        parse_keys_message(bytes(message), GROUP.public)
    unsigned = bencode.encode({k: v for k, v in _valid().items() if k != b"~"})
    with pytest.raises(MalformedKeysMessage):
        parse_keys_message(unsigned, GROUP.public)


def test_truncated_message_gives_typed_errors() -> None:
    message = bytes.fromhex(REKEY["expected_keys_message"])
    for end in range(0, len(message), 7):
        with pytest.raises(KeysMessageError):
            parse_keys_message(message[:end], GROUP.public)


@given(st.binary(max_size=400))
def test_random_bytes_give_typed_errors(data: bytes) -> None:
    with pytest.raises(SessionError):
        parse_keys_message(data, GROUP.public)
    ring = GroupKeyring(GROUP.public, identity=USERS[0])
    with pytest.raises(SessionError):
        ring.load_message(data, "h", 1)
    assert ring.keys == [] and ring.current_hashes() == set()


def test_bad_key_list_inside_our_supplement_entry() -> None:
    # A correctly signed supplement whose entry for us holds garbage: typed error.
    nonce = bytes(24)
    entry = aead_encrypt(b"l" + b"x" * 60 + b"e", nonce, member_key(USERS[0], GROUP.public))
    message = _resign(GROUP, {b"#": nonce, b"+": [entry], b"G": 0})
    parsed = parse_keys_message(message, GROUP.public)
    with pytest.raises(MalformedKeysMessage):
        decrypt_keys(parsed, 1, identity=USERS[0], group_ed25519_pk=GROUP.public)


@given(st.binary(min_size=52, max_size=200))
def test_random_plaintext_in_our_supplement_entry(plain: bytes) -> None:
    nonce = bytes(24)
    entry = aead_encrypt(plain, nonce, member_key(USERS[0], GROUP.public))
    parsed = parse_keys_message(
        _resign(GROUP, {b"#": nonce, b"+": [entry], b"G": 0}), GROUP.public
    )
    try:
        keys = decrypt_keys(parsed, 1, identity=USERS[0], group_ed25519_pk=GROUP.public)
    except MalformedKeysMessage:
        return
    assert keys and all(len(k.key) == 32 and k.generation >= 0 for k in keys)


# ------------------------------------------------------------------ writer -> reader property


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.lists(st.binary(min_size=32, max_size=32), min_size=2, max_size=6, unique=True),
    group_seed=st.binary(min_size=32, max_size=32),
    generation=st.integers(min_value=0, max_value=10**6),
)
def test_writer_then_reader(seeds: list[bytes], group_seed: bytes, generation: int) -> None:
    group = GroupKeyPair(group_seed)
    *members, outsider = [Identity.from_seed(s) for s in seeds]
    rekey = make_rekey(group, [m.session_id for m in members], generation)
    parsed = parse_keys_message(rekey.message, group.public)
    assert len(parsed.member_entries) % KEY_PADDING_MULTIPLE == 0
    for member in members:
        found = decrypt_keys(parsed, 1, identity=member, group_ed25519_pk=group.public)
        assert found == [GroupKey(generation, 1, rekey.key)]
    assert decrypt_keys(parsed, 1, identity=outsider, group_ed25519_pk=group.public) == []
    assert decrypt_keys(parsed, 1, group=group) == [GroupKey(generation, 1, rekey.key)]


# ------------------------------------------------------------------ key list (§3.6, risk #11)


def _ring(member: Identity | None = None) -> GroupKeyring:
    if member is None:
        return GroupKeyring(GROUP.public, group=GROUP)
    return GroupKeyring(GROUP.public, identity=member)


def _gen(generation: int, members: list[Identity] | None = None) -> bytes:
    people = MEMBERS if members is None else members
    return make_rekey(GROUP, [m.session_id for m in people], generation).message


def test_newest_first_and_expiry_over_60_days() -> None:
    ring = _ring(MEMBERS[0])
    assert ring.load_message(_gen(0), "h0", 0)
    assert ring.load_message(_gen(1), "h1", 10 * DAY)
    assert ring.load_message(_gen(2), "h2", 69 * DAY)
    assert [k.generation for k in ring.keys] == [0, 1, 2]
    assert ring.decryption_keys() == [k.key for k in reversed(ring.keys)]
    assert ring.encryption_key() == ring.keys[-1].key
    # A known (generation, key) seen again later keeps its first timestamp: nothing lapses.
    assert ring.load_message(_gen(2), "h2b", 75 * DAY)
    assert [k.generation for k in ring.keys] == [0, 1, 2]
    # gen 1 began at 10 d; the newest key is now 75 d > 10 d + 60 d: generation 0 lapses.
    assert ring.load_message(_gen(3), "h3", 75 * DAY)
    assert [k.generation for k in ring.keys] == [1, 2, 3]
    assert ring.current_hashes() == {"h1", "h2", "h2b", "h3"}
    # A re-delivered gen-0 message is now stale and ignored.
    assert ring.load_message(_gen(0), "h0-again", 0)
    assert [k.generation for k in ring.keys] == [1, 2, 3]
    assert "h0-again" not in ring.current_hashes()


def test_expiry_uses_swarm_timestamps_in_any_load_order() -> None:
    forward, backward = _ring(MEMBERS[0]), _ring(MEMBERS[0])
    loads = [(0, 0), (1, 10 * DAY), (2, 75 * DAY)]
    for gen, ts in loads:
        forward.load_message(_gen(gen), f"h{gen}", ts)
    for gen, ts in reversed(loads):
        backward.load_message(_gen(gen), f"h{gen}", ts)
    assert forward.keys == backward.keys
    assert [k.generation for k in forward.keys] == [1, 2]
    assert forward.current_hashes() == backward.current_hashes() == {"h1", "h2"}
    boundary = _ring(MEMBERS[0])
    for gen, ts in [(0, 0), (1, 10 * DAY), (2, 10 * DAY + KEY_EXPIRY_MS)]:
        boundary.load_message(_gen(gen), f"h{gen}", ts)
    assert [k.generation for k in boundary.keys] == [0, 1, 2]  # exactly 60 days: kept


def test_duplicate_key_only_adds_the_hash() -> None:
    ring = _ring(MEMBERS[1])
    ring.load_message(_gen(0), "a", 5)
    ring.load_message(_gen(0), "b", 9)
    assert len(ring.keys) == 1 and ring.current_hashes() == {"a", "b"}


def test_message_without_our_key_is_still_active() -> None:
    ring = _ring(OUTSIDER)
    assert not ring.load_message(_gen(0), "x", 5)
    assert ring.keys == [] and ring.current_hashes() == {"x"}
    with pytest.raises(NoGroupKey):
        ring.encryption_key()


def test_pending_key_first_until_it_comes_back() -> None:
    admin = _ring()
    admin.load_message(_gen(0), "g0", 100)
    rekey = admin.rekey([m.session_id for m in MEMBERS])
    assert rekey.generation == 1
    assert admin.pending == rekey
    assert admin.encryption_key() == rekey.key
    assert admin.decryption_keys()[0] == rekey.key
    assert admin.load_message(rekey.message, "g1", 200)
    assert admin.pending is None
    assert admin.decryption_keys()[0] == rekey.key and len(admin.decryption_keys()) == 2


def test_pending_cleared_by_a_higher_generation() -> None:
    admin = _ring()
    admin.load_message(_gen(0), "g0", 100)
    admin.rekey([USERS[0].session_id])
    admin.load_message(_gen(5), "g5", 300)
    assert admin.pending is None
    assert admin.keys[-1].generation == 5
    assert admin.rekey([USERS[0].session_id]).generation == 6


def test_needs_rekey_after_concurrent_rekeys() -> None:
    admin, member = _ring(), _ring(MEMBERS[0])
    for ring in (admin, member):
        ring.load_message(_gen(3, MEMBERS), "a", 100)
        ring.load_message(_gen(3, [*MEMBERS, USERS[2]]), "b", 101)  # same gen, other key
        assert [k.generation for k in ring.keys] == [3, 3]
    assert admin.needs_rekey()
    assert not member.needs_rekey()


def test_supplement_through_the_keyring() -> None:
    admin = _ring()
    admin.load_message(_gen(0), "g0", 100)
    admin.load_message(_gen(1), "g1", 200)
    newcomer = _ring(USERS[5])
    assert newcomer.load_message(admin.supplement([USERS[5].session_id]), "s", 300)
    assert newcomer.keys == admin.keys  # timestamps come from the supplement's "t"
    assert newcomer.current_hashes() == {"s"}


def test_keyring_argument_checks() -> None:
    with pytest.raises(SessionError):
        GroupKeyring(GROUP.public)
    with pytest.raises(SessionError):
        GroupKeyring(bytes(32), group=GROUP)
    with pytest.raises(SessionError):
        _ring(USERS[0]).rekey([])
    with pytest.raises(SessionError):
        _ring(USERS[0]).supplement([USERS[1].session_id])

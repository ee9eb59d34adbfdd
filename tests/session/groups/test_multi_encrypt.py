"""multi_encrypt and the kicked note (docs/groups-v2.md §4.4)."""

from __future__ import annotations

from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.ids import SessionID
from bridge.session.errors import SessionError
from bridge.session.groups import bencode
from bridge.session.groups.multi_encrypt import (
    KICKED_DOMAIN,
    KickedNote,
    MalformedMultiEncrypted,
    NotARecipient,
    decode_simple,
    encode_simple,
    make_kicked_note,
    multi_decrypt,
    multi_decrypt_simple,
    multi_encrypt,
    multi_encrypt_key,
    multi_encrypt_simple,
    read_kicked_note,
)
from bridge.session.keys import Identity
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
MULTI: dict[str, Any] = CASES["multi_encrypt"]
KICKED: dict[str, Any] = CASES["kicked_message"]

IDS = [Identity.from_seed(bytes.fromhex(seed)) for seed in MULTI["ed25519_seeds"]]
SENDER, RECIPIENTS, OUTSIDER = IDS[0], IDS[1:4], IDS[4]
NONCE = bytes.fromhex(MULTI["nonce"])
DOMAIN = MULTI["domain_ascii"].encode()


def _encrypt(messages: list[bytes], domain: bytes = DOMAIN) -> list[bytes]:
    keys = [r.x25519_public for r in RECIPIENTS]
    return multi_encrypt(messages, keys, SENDER.x25519_secret, SENDER.x25519_public, domain, NONCE)


def _decrypt(entries: list[bytes], who: Identity, domain: bytes = DOMAIN) -> bytes:
    return multi_decrypt(
        entries, NONCE, who.x25519_secret, who.x25519_public, SENDER.x25519_public, domain
    )


# ------------------------------------------------------------------ upstream vector


def test_vector_x25519_keys_from_seeds() -> None:
    assert [i.x25519_public.hex() for i in IDS] == MULTI["x25519_pubkeys"]


def test_vector_same_message_to_all() -> None:
    assert [e.hex() for e in _encrypt([b"hello"])] == MULTI["expected_same_message_hello"]


def test_vector_one_message_per_recipient() -> None:
    messages = [m.encode() for m in MULTI["messages_ascii"]]
    assert [e.hex() for e in _encrypt(messages)] == MULTI["expected_per_recipient"]


def test_vector_simple_encoding() -> None:
    messages = [m.encode() for m in MULTI["messages_ascii"]]
    keys = [r.x25519_public for r in RECIPIENTS]
    encoded = multi_encrypt_simple(
        messages, keys, SENDER.x25519_secret, SENDER.x25519_public, DOMAIN, NONCE
    )
    assert encoded.hex() == MULTI["expected_simple_encoding"]
    assert decode_simple(encoded) == (NONCE, _encrypt(messages))


def test_vector_each_recipient_decrypts_its_message() -> None:
    encoded = bytes.fromhex(MULTI["expected_simple_encoding"])
    for who, expected in zip(RECIPIENTS, MULTI["messages_ascii"], strict=True):
        plain = multi_decrypt_simple(
            encoded, who.x25519_secret, who.x25519_public, SENDER.x25519_public, DOMAIN
        )
        assert plain == expected.encode()


def test_vector_wrong_domain_and_outsider_fail() -> None:
    entries = _encrypt([m.encode() for m in MULTI["messages_ascii"]])
    with pytest.raises(NotARecipient):
        _decrypt(entries, RECIPIENTS[0], b"not the test suite")
    with pytest.raises(NotARecipient):
        _decrypt(entries, OUTSIDER)


def test_key_is_symmetric_and_sender_first() -> None:
    a, b = SENDER, RECIPIENTS[0]
    sender_side = multi_encrypt_key(
        a.x25519_secret, b.x25519_public, a.x25519_public, b.x25519_public, DOMAIN
    )
    recipient_side = multi_encrypt_key(
        b.x25519_secret, a.x25519_public, a.x25519_public, b.x25519_public, DOMAIN
    )
    swapped = multi_encrypt_key(
        b.x25519_secret, a.x25519_public, b.x25519_public, a.x25519_public, DOMAIN
    )
    assert sender_side == recipient_side != swapped


def test_long_domain_is_truncated_to_64_bytes() -> None:
    long_domain = bytes(range(64)) + b"ignored tail"
    entries = _encrypt([b"x"], long_domain)
    assert _decrypt(entries, RECIPIENTS[1], bytes(range(64))) == b"x"


def test_message_count_must_match() -> None:
    with pytest.raises(SessionError):
        _encrypt([b"a", b"b"])


def test_low_order_recipient_is_a_typed_error() -> None:
    with pytest.raises(SessionError):
        multi_encrypt(
            [b"x"], [bytes(32)], SENDER.x25519_secret, SENDER.x25519_public, DOMAIN, NONCE
        )


# ------------------------------------------------------------------ kicked note


def _group_pk(seed_hex: str) -> bytes:
    return bytes(sodium.crypto_sign_seed_keypair(bytes.fromhex(seed_hex))[0])


def test_kicked_message_self_computed_vector() -> None:
    note = make_kicked_note(
        bytes.fromhex(KICKED["group_seed"]),
        [SessionID(KICKED["removed_session_id"])],
        KICKED["current_generation"],
        bytes.fromhex(KICKED["nonce"]),
    )
    assert note.hex() == KICKED["expected_message"]
    removed = Identity.from_seed(bytes.fromhex("00112233445566778899aabbccddeeff" * 2))
    assert removed.session_id.value == KICKED["removed_session_id"]
    payload = multi_decrypt_simple(
        note,
        removed.x25519_secret,
        removed.x25519_public,
        sodium.crypto_sign_ed25519_pk_to_curve25519(_group_pk(KICKED["group_seed"])),
        KICKED_DOMAIN,
    )
    assert payload.hex() == KICKED["payload"]
    note_read = read_kicked_note(note, removed, _group_pk(KICKED["group_seed"]))
    assert note_read == KickedNote(KICKED["current_generation"])


def test_kicked_note_for_several_members() -> None:
    seed = bytes(range(32))
    group_pk = bytes(sodium.crypto_sign_seed_keypair(seed)[0])
    removed = RECIPIENTS[:2]
    note = make_kicked_note(seed, [r.session_id for r in removed], 12)
    for who in removed:
        assert read_kicked_note(note, who, group_pk).generation == 12
    with pytest.raises(NotARecipient):
        read_kicked_note(note, OUTSIDER, group_pk)
    with pytest.raises(NotARecipient):  # another group's note
        read_kicked_note(note, removed[0], _group_pk(KICKED["group_seed"]))


def test_kicked_note_naming_someone_else_is_refused() -> None:
    seed = bytes(range(32))
    group_pk, group_sk = sodium.crypto_sign_seed_keypair(seed)
    victim = RECIPIENTS[0]
    # A note that decrypts for `victim` but names another member's key.
    note = multi_encrypt_simple(
        [OUTSIDER.x25519_public + b"3"],
        [victim.x25519_public],
        sodium.crypto_sign_ed25519_sk_to_curve25519(group_sk),
        sodium.crypto_sign_ed25519_pk_to_curve25519(group_pk),
        KICKED_DOMAIN,
    )
    with pytest.raises(NotARecipient):
        read_kicked_note(note, victim, bytes(group_pk))


@pytest.mark.parametrize("digits", [b"", b"x1", b"01", b"-1", b"1" * 20])
def test_kicked_note_with_bad_generation(digits: bytes) -> None:
    seed = bytes(range(32))
    group_pk, group_sk = sodium.crypto_sign_seed_keypair(seed)
    victim = RECIPIENTS[0]
    note = multi_encrypt_simple(
        [victim.x25519_public + digits],
        [victim.x25519_public],
        sodium.crypto_sign_ed25519_sk_to_curve25519(group_sk),
        sodium.crypto_sign_ed25519_pk_to_curve25519(group_pk),
        KICKED_DOMAIN,
    )
    with pytest.raises(MalformedMultiEncrypted):
        read_kicked_note(note, victim, bytes(group_pk))


# ------------------------------------------------------------------ properties and fuzzing


@settings(max_examples=40, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=200), min_size=1, max_size=3),
    seeds=st.lists(st.binary(min_size=32, max_size=32), min_size=4, max_size=4, unique=True),
    domain=st.binary(min_size=1, max_size=80),
)
def test_round_trip(messages: list[bytes], seeds: list[bytes], domain: bytes) -> None:
    sender, *people = [Identity.from_seed(s) for s in seeds]
    recipients = people[: len(messages)] if len(messages) > 1 else people
    encoded = multi_encrypt_simple(
        messages,
        [r.x25519_public for r in recipients],
        sender.x25519_secret,
        sender.x25519_public,
        domain,
    )
    for i, who in enumerate(recipients):
        plain = multi_decrypt_simple(
            encoded, who.x25519_secret, who.x25519_public, sender.x25519_public, domain
        )
        assert plain == messages[i if len(messages) > 1 else 0]
    if len(recipients) < len(people):
        outsider = people[-1]
        with pytest.raises(NotARecipient):
            multi_decrypt_simple(
                encoded,
                outsider.x25519_secret,
                outsider.x25519_public,
                sender.x25519_public,
                domain,
            )


@given(st.binary(max_size=300))
def test_random_bytes_give_typed_errors(data: bytes) -> None:
    victim = RECIPIENTS[0]
    with pytest.raises(SessionError):
        read_kicked_note(data, victim, _group_pk(KICKED["group_seed"]))
    with pytest.raises(SessionError):
        multi_decrypt_simple(
            data, victim.x25519_secret, victim.x25519_public, SENDER.x25519_public, DOMAIN
        )


@given(st.binary(min_size=24, max_size=24), st.lists(st.binary(max_size=60), max_size=5))
def test_random_entries_in_valid_encoding(nonce: bytes, entries: list[bytes]) -> None:
    data = encode_simple(nonce, entries)
    assert decode_simple(data) == (nonce, entries)
    with pytest.raises(NotARecipient):
        multi_decrypt_simple(
            data, OUTSIDER.x25519_secret, OUTSIDER.x25519_public, SENDER.x25519_public, DOMAIN
        )


def test_truncated_note_gives_typed_errors() -> None:
    note = bytes.fromhex(KICKED["expected_message"])
    removed = Identity.from_seed(bytes.fromhex("00112233445566778899aabbccddeeff" * 2))
    for end in range(len(note)):
        with pytest.raises(SessionError):
            read_kicked_note(note[:end], removed, _group_pk(KICKED["group_seed"]))


@pytest.mark.parametrize(
    "value",
    [{b"#": b"short", b"e": []}, {b"#": bytes(24)}, {b"#": bytes(24), b"e": [1]}, [b"x"]],
)
def test_wrong_shapes_are_malformed(value: bencode.Encodable) -> None:
    with pytest.raises(MalformedMultiEncrypted):
        decode_simple(bencode.encode(value))

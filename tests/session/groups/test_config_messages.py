"""Config messages: parse, verify, read, write, multipart (docs/groups-v2.md §1.3-§1.13).

Risks of §10.2 covered here: #5 (canonical bytes, hash over received bytes), #6 (signature
over the prefix without the final ``e``), #17 (unknown keys survive an admin edit).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from bridge.session.errors import CryptoError, InvalidInput, SessionError
from bridge.session.groups import config, config_crypto, multipart
from bridge.session.groups.bencode import BencodeError, BValue, Encodable, decode_dict, encode
from bridge.session.groups.config_data import ConfigDataError, InputValue, diff, normalize
from bridge.session.groups.user_config_wrap import unwrap_user_config, wrap_user_config
from bridge.session.onetoone import MessageKeys
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
SERIAL = CASES["config_message_serialization"]
SIG = CASES["config_message_signature"]
FIRST = CASES["group_info_first_push"]
GROUP_PK, GROUP_SK = sodium.crypto_sign_seed_keypair(bytes.fromhex(FIRST["group_seed"]))
ENC_KEY = bytes.fromhex(FIRST["group_enc_key"])
OLD_KEY = b"\x11" * 32
DOMAIN = config.INFO_DOMAIN
NOW = 1_700_000_000_000
WRAP = CASES["wrap_config_digest"]
USER = MessageKeys.from_seed(bytes.fromhex(WRAP["user_seed"]))


def _msg(name: str) -> config.ConfigMessage:
    return config.parse_message(bytes.fromhex(SERIAL[name]), None)


# ---------------------------------------------------------------------------------- upstream


def test_upstream_serialization_chain_10_to_15() -> None:
    m10 = _msg("seqno10_message")
    assert m10.hash.hex() == SERIAL["seqno10_hash"]
    data11 = {k: v for k, v in m10.data.items() if k != b"foo"}
    m11 = config.parse_message(config.next_message(m10, data11, None), None)
    assert m11.hash.hex() == SERIAL["seqno11_hash"]
    data12: dict[bytes, InputValue] = {
        b"foo": 123,
        b"bar": {b"": {42, 99, b"a", b"c"}, b"asdf": 123, b"xyz": 42, b"a": 42},
    }
    raw12 = config.next_message(m11, data12, None)
    assert raw12.hex() == SERIAL["seqno12_message"]
    current = config.parse_message(raw12, None)
    for seqno in (13, 14, 15):  # empty increments
        raw = config.next_message(current, current.data, None)
        current = config.parse_message(raw, None)
        assert current.seqno == seqno
        assert current.hash.hex() == SERIAL[f"seqno{seqno}_hash"]
    assert current.raw.hex() == SERIAL["seqno15_message"]
    assert [d.seqno for d in current.lagged] == [11, 12, 13, 14]  # seqno 10 left the window


def test_upstream_seqno12_diff_and_lag() -> None:
    m12 = _msg("seqno12_message")
    assert m12.diff == {
        b"bar": {b"": [[99, b"c"], [b"b"]], b"a": b"", b"xyz": b""},
        b"foo": b"",
    }
    assert [(d.seqno, d.hash.hex()) for d in m12.lagged] == [
        (10, SERIAL["seqno10_hash"]),
        (11, SERIAL["seqno11_hash"]),
    ]
    assert m12.hash.hex() == SERIAL["seqno12_hash"]


def test_risk6_upstream_signature_over_prefix_without_final_e() -> None:
    sk = bytes.fromhex(SIG["ed25519_secret_key"])
    unsigned = bytes.fromhex(SIG["unsigned_message"])
    signed = config.sign_message(unsigned, sk)
    assert signed.hex() == SIG["expected_signed_message"]
    VerifyKey(sk[32:]).verify(unsigned[:-1], bytes.fromhex(SIG["expected_signature"]))
    parsed = config.parse_message(signed, sk[32:])
    assert parsed.signature is not None and parsed.signature.hex() == SIG["expected_signature"]
    assert parsed.hash.hex() == SIG["expected_signed_message_hash"]
    assert parsed.seqno == 10


def test_group_info_first_push_regression() -> None:
    empty = config.empty_message()
    assert empty.raw.decode() == FIRST["seqno0_empty_message_ascii"]
    assert empty.hash.hex() == FIRST["seqno0_empty_hash"]
    data: dict[bytes, InputValue] = {b"n": b"Determinism Group", b"E": 3600, b"c": 1682529839}
    raw = config.next_message(empty, data, GROUP_SK)
    assert raw.hex() == FIRST["expected_signed_plaintext"]
    assert config.message_hash(raw).hex() == FIRST["expected_signed_plaintext_hash"]
    sealed = config.seal_message(raw, ENC_KEY, DOMAIN, use_zstd=False)
    assert [b.hex() for b in sealed] == [FIRST["expected_ciphertext_uncompressed"]]


# ---------------------------------------------------------------------------------- parse rules


def _signed(message: dict[bytes, Encodable]) -> bytes:
    return config.sign_message(encode(message), GROUP_SK)


def test_risk5_hash_and_signature_use_received_bytes() -> None:
    raw = config.next_message(config.empty_message(), {b"x": {b"\x05" * 33: 1}}, GROUP_SK)
    parsed = config.parse_message(raw, GROUP_PK)
    assert parsed.raw == raw
    assert parsed.hash == hashlib.blake2b(raw, digest_size=32).digest()
    # A non-canonical copy (keys swapped) is refused instead of being re-encoded.
    swapped = raw.replace(b"1:<", b"1:?", 1)
    with pytest.raises(SessionError):
        config.parse_message(swapped, GROUP_PK)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({b"&": {}}, config.ConfigMessageError),  # no seqno
        ({b"!": 1, b"#": 1, b"&": {}}, config.ConfigMessageError),  # key before "#"
        ({b"#": b"1", b"&": {}}, config.ConfigMessageError),
        ({b"#": -1, b"&": {}}, config.ConfigMessageError),
        ({b"#": 1}, config.ConfigMessageError),  # no data
        ({b"#": 1, b"&": {b"a": {}}}, ConfigDataError),  # empty nested dict
        ({b"#": 1, b"&": {b"a": []}}, ConfigDataError),  # empty set
        ({b"#": 1, b"&": {b"a": [2, 1]}}, ConfigDataError),  # unsorted set
        ({b"#": 1, b"&": {b"a": [b"x", 1]}}, ConfigDataError),  # strings before ints
        ({b"#": 1, b"&": {b"a": [1, 1]}}, ConfigDataError),
        ({b"#": 1, b"&": {b"a": [[1]]}}, ConfigDataError),
        ({b"#": 1, b"&": {}, b"<": [[1, b"h" * 32, {}]]}, config.ConfigMessageError),
        ({b"#": 5, b"&": {}, b"<": [[1, b"h" * 31, {}]]}, config.ConfigMessageError),
        ({b"#": 5, b"&": {}, b"<": [[1, b"h" * 32]]}, config.ConfigMessageError),
        (
            {b"#": 5, b"&": {}, b"<": [[3, b"h" * 32, {}], [2, b"h" * 32, {}]]},
            config.ConfigMessageError,
        ),
        (
            {b"#": 5, b"&": {}, b"<": [[3, b"h" * 32, {}], [3, b"h" * 32, {}]]},
            config.ConfigMessageError,
        ),
        ({b"#": 5, b"&": {}, b"=": {b"a": b"?"}}, ConfigDataError),
        ({b"#": 5, b"&": {}, b"=": {b"a": [[1]]}}, ConfigDataError),
        ({b"#": 5, b"&": {}, b"=": []}, config.ConfigMessageError),
    ],
)
def test_invalid_messages_are_rejected(message: dict[bytes, Encodable], error: type) -> None:
    with pytest.raises(error):
        config.parse_message(_signed(message), GROUP_PK)


def test_lagged_entries_outside_window_are_dropped_silently() -> None:
    lagged: list[BValue] = [[s, bytes([s]) * 32, {}] for s in (4, 5, 6, 9)]
    parsed = config.parse_message(_signed({b"#": 10, b"&": {}, b"<": lagged}), GROUP_PK)
    assert [d.seqno for d in parsed.lagged] == [6, 9]


def test_signature_required_valid_and_last() -> None:
    unsigned = encode({b"#": 1, b"&": {}})
    with pytest.raises(config.ConfigSignatureError):
        config.parse_message(unsigned, GROUP_PK)
    signed = config.sign_message(unsigned, GROUP_SK)
    tampered = signed[:-2] + bytes([signed[-2] ^ 1]) + b"e"  # flip a signature bit
    with pytest.raises(config.ConfigSignatureError):
        config.parse_message(tampered, GROUP_PK)
    other_pk = sodium.crypto_sign_seed_keypair(b"\x07" * 32)[0]
    with pytest.raises(CryptoError):
        config.parse_message(signed, other_pk)
    after = signed[:-1] + encode(b"\x7f") + b"i1ee"  # a key after "~"
    with pytest.raises(SessionError):
        config.parse_message(after, GROUP_PK)


def test_unknown_outer_keys_are_kept_by_the_writer() -> None:
    raw = _signed({b"#": 3, b"&": {b"n": b"x"}, b"F": [1, 2], b"_": b"future"})
    parsed = config.parse_message(raw, GROUP_PK)
    assert parsed.extra == {b"F": [1, 2], b"_": b"future"}
    following = config.parse_message(config.next_message(parsed, {b"n": b"y"}, GROUP_SK), GROUP_PK)
    assert following.extra == parsed.extra and following.seqno == 4
    assert following.diff == {b"n": b""}


def test_diff_rules() -> None:
    old = normalize({b"a": 1, b"s": {1, b"x"}, b"d": {b"k": b"v", b"t": {2}}, b"g": b"q"})
    new = normalize({b"a": 1, b"s": {2, b"x"}, b"d": 5, b"g": {b"k": 1}, b"h": {3}})
    assert diff(old, new) == {
        b"d": b"",
        b"g": {b"k": b""},
        b"h": [[3], []],
        b"s": [[2], [1]],
    }
    assert diff(new, {}) == {
        b"a": b"-",
        b"d": b"-",
        b"g": {b"k": b"-"},
        b"h": [[], [3]],
        b"s": [[], [2, b"x"]],
    }
    assert normalize({b"a": {b"b": {}}, b"c": set(), b"d": 0}) == {b"d": 0}


# ---------------------------------------------------------------------------------- reader


def _push(
    previous: config.ConfigMessage, data: dict[bytes, InputValue], key: bytes = ENC_KEY
) -> tuple[config.ConfigMessage, bytes]:
    raw = config.next_message(previous, data, GROUP_SK)
    [blob] = config.seal_message(raw, key, DOMAIN)
    return config.parse_message(raw, GROUP_PK), blob


def _read(
    blobs: list[tuple[str, bytes]],
    current: config.ConfigState | None = None,
    assembler: multipart.Assembler | None = None,
) -> config.ReadResult:
    return config.read_blobs(
        blobs,
        [ENC_KEY, OLD_KEY],
        DOMAIN,
        GROUP_PK,
        current or config.ConfigState(),
        assembler or multipart.Assembler(),
        NOW,
    )


def test_reader_picks_highest_seqno_and_drops_bad_blobs() -> None:
    m1, b1 = _push(config.empty_message(), {b"n": b"one"})
    m2, b2 = _push(m1, {b"n": b"two"}, key=OLD_KEY)  # an older generation still decrypts
    unknown_key = config.seal_message(m2.raw, b"\x99" * 32, DOMAIN)[0]
    forged = config.seal_message(config.next_message(m2, {b"n": b"evil"}, None), ENC_KEY, DOMAIN)[
        0
    ]
    result = _read([("h1", b1), ("h2", b2), ("hx", unknown_key), ("hf", forged), ("hg", b"junk")])
    assert result.state.data == {b"n": b"two"} and result.changed
    assert result.state.storage_hashes == {"h2"}
    assert {r.storage_hash for r in result.rejected} == {"hx", "hf", "hg"}
    # Keeps the held state when only older messages arrive; re-stored copies add hashes.
    again = _read([("h1", b1), ("h2b", b2)], current=result.state)
    assert not again.changed and again.state.storage_hashes == {"h2", "h2b"}


def test_reader_breaks_seqno_ties_by_hash() -> None:
    base, _ = _push(config.empty_message(), {b"n": b"base"})
    a, blob_a = _push(base, {b"n": b"a"})
    b, blob_b = _push(base, {b"n": b"b"})
    winner = max(a, b, key=lambda m: m.hash)
    result = _read([("a", blob_a), ("b", blob_b)])
    assert result.state.message.hash == winner.hash


def _noise(size: int) -> bytes:
    out = b"".join(hashlib.blake2b(i.to_bytes(4, "big")).digest() for i in range(size // 64 + 1))
    return out[:size]


def test_multipart_write_and_read() -> None:
    data = {b"blob": _noise(100_000)}
    raw = config.next_message(config.empty_message(), data, GROUP_SK)
    blobs = config.seal_message(raw, ENC_KEY, DOMAIN)
    assert len(blobs) == 2 and all(len(b) <= config_crypto.MAX_MESSAGE_SIZE for b in blobs)
    assembler = multipart.Assembler()
    first = _read([("p2", blobs[1])], assembler=assembler)
    assert first.pending_parts == 1 and not first.changed
    done = _read([("p2", blobs[1]), ("p1", blobs[0])], assembler=multipart.Assembler())
    assert done.state.data == data and done.state.storage_hashes == {"p1", "p2"}
    late = _read([("p1", blobs[0])], assembler=assembler)
    assert late.state.data == data


def test_multipart_assembler_edge_cases() -> None:
    padded = config_crypto.pad(b"d1:a" + b"90000:" + _noise(90_000) + b"e")
    parts = [multipart.classify(p) for p in multipart.split(padded)]
    assert all(isinstance(p, multipart.Part) for p in parts)
    p0, p1 = parts
    assert isinstance(p0, multipart.Part) and isinstance(p1, multipart.Part)
    asm = multipart.Assembler()
    assert isinstance(asm.add("a", p0, NOW), multipart.Pending)
    assert isinstance(asm.add("a2", p0, NOW), multipart.Ignored)  # duplicate
    wrong_count = multipart.Part(p1.final_hash, p1.index, 3, p1.chunk)
    assert isinstance(asm.add("x", wrong_count, NOW), multipart.Ignored)
    asm.prune(NOW + multipart.INCOMPLETE_TTL_MS + 1)  # the incomplete set expires
    assert isinstance(asm.add("b", p1, NOW), multipart.Pending)
    bad_hash = multipart.Assembler()
    bad_hash.add("a", p0, NOW)
    corrupted = multipart.Part(p1.final_hash, p1.index, p1.count, p1.chunk[:-1] + b"!")
    assert isinstance(bad_hash.add("b", corrupted, NOW), multipart.Ignored)
    with pytest.raises(multipart.MultipartError):
        multipart.split(b"small")


@pytest.mark.parametrize(
    "body",
    [
        b"m" + encode([b"h" * 32, b"\x00", b"\x01", b"x"]),  # count < 2
        b"m" + encode([b"h" * 32, b"\x05", b"\x02", b"x"]),  # index > count
        b"m" + encode([b"h" * 31, b"\x00", b"\x02", b"x"]),
        b"m" + encode([b"h" * 32, 0, 2, b"x"]),  # ints instead of 1-byte strings
        b"m" + encode([b"h" * 32, b"\x00", b"\x02"]),
        b"m" + encode({b"a": 1}),
        b"mxyz",
    ],
)
def test_malformed_parts_are_typed_errors(body: bytes) -> None:
    with pytest.raises((multipart.MultipartError, BencodeError)):
        multipart.classify(body)


# ---------------------------------------------------------------------------------- properties

scalars = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.binary(max_size=20)
values = st.recursive(
    scalars | st.frozensets(scalars, max_size=4),
    lambda inner: st.dictionaries(st.binary(max_size=4), inner, max_size=4),
    max_leaves=15,
)
datas = st.dictionaries(st.binary(max_size=6), values, max_size=6)


@settings(max_examples=60)
@given(datas, datas)
def test_writer_to_reader_round_trip(
    first: dict[bytes, InputValue], second: dict[bytes, InputValue]
) -> None:
    m1, b1 = _push(config.empty_message(), first)
    _, b2 = _push(m1, second)
    result = _read([("1", b1), ("2", b2)])
    assert result.state.data == normalize(second)
    assert result.state.message.seqno == 2
    assert result.state.message.diff == diff(normalize(first), normalize(second))
    empty = config.empty_message()
    assert decode_dict(result.state.message.raw)[b"<"] == [
        [0, empty.hash, {}],
        [1, m1.hash, m1.diff],
    ]


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_typed_errors(raw: bytes) -> None:
    calls: tuple[Callable[[], object], ...] = (
        lambda: config.parse_message(raw, GROUP_PK),
        lambda: config.parse_message(raw, None),
        lambda: multipart.classify(raw),
        lambda: multipart.classify(b"m" + raw),
        lambda: unwrap_user_config(USER, raw),
    )
    for call in calls:
        with contextlib.suppress(SessionError):
            call()
    assert not _read([("r", raw)]).changed


def test_truncated_messages_only_raise_typed_errors() -> None:
    raw = bytes.fromhex(FIRST["expected_signed_plaintext"])
    for cut in range(len(raw)):
        with pytest.raises(SessionError):
            config.parse_message(raw[:cut], GROUP_PK)
    blob = config.seal_message(raw, ENC_KEY, DOMAIN)[0]
    for cut in range(0, len(blob), 7):
        assert _read([("t", blob[:cut])]).rejected


# ---------------------------------------------------------------------------------- §1.11 wrapper


@pytest.mark.parametrize(("namespace", "digest"), WRAP["expected_blake2b256_of_wrapped"].items())
def test_user_config_wrapper_upstream_digest(namespace: str, digest: str) -> None:
    payload = WRAP["payload_ascii"].encode()
    wrapped = wrap_user_config(USER, int(namespace), WRAP["seqno"], payload)
    assert hashlib.blake2b(wrapped, digest_size=32).hexdigest() == digest
    assert unwrap_user_config(USER, wrapped) == payload


def test_user_config_wrapper_rejects_other_accounts_and_garbage() -> None:
    wrapped = wrap_user_config(USER, 5, 1, b"blob")
    with pytest.raises(SessionError):
        unwrap_user_config(MessageKeys.from_seed(b"\x01" * 32), wrapped)
    with pytest.raises(InvalidInput):
        wrap_user_config(USER, 13, 1, b"blob")  # group configs are never wrapped
    for cut in range(0, len(wrapped), 5):
        with pytest.raises(SessionError):
            unwrap_user_config(USER, wrapped[:cut])

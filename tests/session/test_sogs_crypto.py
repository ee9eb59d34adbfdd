from __future__ import annotations

import base64
import hashlib
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ids import BlindedID, SessionID, UnblindedSogsID
from bridge.session.blinding import blind15_id, blind15_sign, blind25_key_pair, blind25_sign
from bridge.session.errors import DecodeError, SessionError
from bridge.session.keys import Identity
from bridge.session.sogs import auth, inbox, posts
from bridge.session.sogs.auth import (
    BadAuthPubkeyError,
    BadAuthSignatureError,
    MalformedAuthHeaderError,
    SogsAuthError,
    TimestampSkewError,
)
from tests.vectors import load

V: dict[str, Any] = load("session-protocol")["sogs_auth"]
IDENTITY = Identity.from_seed(bytes.fromhex(V["ed25519_seed"]))
SERVER = bytes.fromhex(V["server_pubkey"])
NONCE = base64.b64decode(V["nonce_b64"])
BODY = V["body_utf8"].encode()
ALICE = Identity.from_seed(bytes(range(16)))
BOB = Identity.from_seed(bytes(range(16, 32)))

seeds = st.binary(min_size=16, max_size=16)
paths = st.text(min_size=1, max_size=60).map(lambda text: "/" + text)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])

# --- X-SOGS-* auth headers (§5.2, vectors §8.3) -------------------------------------------------

AUTH_CASES = [
    (True, b"", "blinded_pubkey_header", "blinded_signature_no_body"),
    (True, BODY, "blinded_pubkey_header", "blinded_signature_with_body"),
    (False, b"", "unblinded_pubkey_header", "unblinded_signature_no_body"),
    (False, BODY, "unblinded_pubkey_header", "unblinded_signature_with_body"),
]


def test_vector_identity() -> None:
    assert IDENTITY.session_id.value == V["session_id"]


@pytest.mark.parametrize(("blinded", "body", "pubkey_key", "signature_key"), AUTH_CASES)
def test_vector_headers(blinded: bool, body: bytes, pubkey_key: str, signature_key: str) -> None:
    headers = auth.sign_request(
        IDENTITY,
        SERVER,
        V["method"],
        V["path"],
        body,
        timestamp=int(V["timestamp"]),
        nonce=NONCE,
        blinded=blinded,
    )
    assert headers.as_dict() == {
        "X-SOGS-Pubkey": V[pubkey_key],
        "X-SOGS-Timestamp": V["timestamp"],
        "X-SOGS-Nonce": V["nonce_b64"],
        "X-SOGS-Signature": V[signature_key],
    }


@pytest.mark.parametrize(("blinded", "body", "pubkey_key", "signature_key"), AUTH_CASES)
def test_vector_headers_verify(
    blinded: bool, body: bytes, pubkey_key: str, signature_key: str
) -> None:
    headers = {
        "x-sogs-pubkey": V[pubkey_key],
        "X-SOGS-TIMESTAMP": V["timestamp"],
        "X-Sogs-Nonce": V["nonce_b64"],
        "X-SOGS-Signature": V[signature_key],
        "Content-Type": "application/json",
    }
    result = auth.verify_request(headers, SERVER, V["method"], V["path"], body)
    assert result is not None
    expected = BlindedID if blinded else UnblindedSogsID
    assert result.signer == expected(V[pubkey_key])
    assert (result.timestamp, result.nonce) == (int(V["timestamp"]), NONCE)
    with pytest.raises(BadAuthSignatureError):
        auth.verify_request(headers, SERVER, "POST", V["path"], body)
    with pytest.raises(BadAuthSignatureError):
        auth.verify_request(headers, SERVER, V["method"], V["path"] + "0", body)
    with pytest.raises(BadAuthSignatureError):
        auth.verify_request(headers, SERVER, V["method"], V["path"], body + b"x")
    with pytest.raises(BadAuthSignatureError):
        auth.verify_request(headers, bytes(32), V["method"], V["path"], body)


def test_signed_message_layout() -> None:
    message = auth.signed_message(SERVER, NONCE, "123", "GET", "/a?b=1", BODY)
    digest = hashlib.blake2b(BODY, digest_size=64).digest()
    assert message == SERVER + NONCE + b"123GET/a?b=1" + digest
    assert (
        auth.signed_message(SERVER, NONCE, "123", "GET", "/", b"") == SERVER + NONCE + b"123GET/"
    )


def test_anonymous_request_has_no_signer() -> None:
    assert auth.verify_request({"Accept": "*/*"}, SERVER, "GET", "/rooms") is None


def _vector_headers() -> dict[str, str]:
    return {
        "X-SOGS-Pubkey": V["blinded_pubkey_header"],
        "X-SOGS-Timestamp": V["timestamp"],
        "X-SOGS-Nonce": V["nonce_b64"],
        "X-SOGS-Signature": V["blinded_signature_no_body"],
    }


@pytest.mark.parametrize("missing", auth.HEADER_NAMES)
def test_partial_headers_are_malformed(missing: str) -> None:
    headers = _vector_headers()
    del headers[missing]
    with pytest.raises(MalformedAuthHeaderError) as caught:
        auth.verify_request(headers, SERVER, V["method"], V["path"])
    assert caught.value.http_status == 400


def test_hex_nonce_is_accepted() -> None:
    headers = _vector_headers() | {"X-SOGS-Nonce": NONCE.hex().upper()}
    result = auth.verify_request(headers, SERVER, V["method"], V["path"])
    assert result is not None and result.nonce == NONCE


@pytest.mark.parametrize(
    ("header", "value", "error"),
    [
        ("X-SOGS-Pubkey", V["session_id"], BadAuthPubkeyError),
        ("X-SOGS-Pubkey", "25" + V["blinded_pubkey_header"][2:], BadAuthPubkeyError),
        ("X-SOGS-Pubkey", V["blinded_pubkey_header"][:-2], BadAuthPubkeyError),
        ("X-SOGS-Pubkey", "nothex", BadAuthPubkeyError),
        ("X-SOGS-Timestamp", "-1642472103", MalformedAuthHeaderError),
        ("X-SOGS-Timestamp", "1.5", MalformedAuthHeaderError),
        ("X-SOGS-Timestamp", "", MalformedAuthHeaderError),
        ("X-SOGS-Nonce", "AAAA", MalformedAuthHeaderError),
        ("X-SOGS-Nonce", "not base64!", MalformedAuthHeaderError),
        ("X-SOGS-Signature", V["nonce_b64"], MalformedAuthHeaderError),
        ("X-SOGS-Signature", "%%%%", MalformedAuthHeaderError),
        ("X-SOGS-Signature", V["unblinded_signature_no_body"], BadAuthSignatureError),
        ("X-SOGS-Timestamp", "1642472104", BadAuthSignatureError),
    ],
)
def test_bad_headers(header: str, value: str, error: type[SogsAuthError]) -> None:
    headers = _vector_headers() | {header: value}
    with pytest.raises(error):
        auth.verify_request(headers, SERVER, V["method"], V["path"])


def test_bad_signature_maps_to_401() -> None:
    assert BadAuthSignatureError.http_status == 401
    assert issubclass(BadAuthSignatureError, SessionError)


@given(seeds, methods, paths, st.binary(max_size=200), st.integers(0, 2**40), st.booleans())
def test_sign_then_verify(
    seed: bytes, method: str, path: str, body: bytes, timestamp: int, blinded: bool
) -> None:
    identity = Identity.from_seed(seed)
    headers = auth.sign_request(
        identity, SERVER, method, path, body, timestamp=timestamp, blinded=blinded
    )
    result = auth.verify_request(headers.as_dict(), SERVER, method, path, body)
    assert result is not None
    if blinded:
        assert result.signer == blind15_id(identity, SERVER)
    else:
        assert result.signer == UnblindedSogsID.from_key(identity.ed25519_public)
    assert result.timestamp == timestamp


@given(st.dictionaries(st.sampled_from(auth.HEADER_NAMES), st.text(max_size=100)))
def test_random_headers_give_typed_errors(headers: dict[str, str]) -> None:
    try:
        auth.verify_request(headers, SERVER, "GET", "/")
    except SogsAuthError:
        return
    assert not headers  # only an anonymous request gets through


@given(st.sampled_from(auth.HEADER_NAMES), st.integers(0, 100))
def test_truncated_headers_give_typed_errors(header: str, keep: int) -> None:
    headers = _vector_headers()
    if keep >= len(headers[header]):
        return
    original, headers[header] = headers[header], headers[header][:keep]
    if headers[header].rstrip("=") == original.rstrip("="):
        # Only base64 padding was cut; padding is optional, so the request still verifies.
        assert auth.verify_request(headers, SERVER, V["method"], V["path"]) is not None
        return
    with pytest.raises(SogsAuthError):
        auth.verify_request(headers, SERVER, V["method"], V["path"])


def test_sign_request_rejects_bad_arguments() -> None:
    with pytest.raises(auth.InvalidRequestError):
        auth.sign_request(IDENTITY, SERVER, "get", "/", timestamp=1)
    with pytest.raises(auth.InvalidRequestError):
        auth.sign_request(IDENTITY, SERVER, "GET", "/", timestamp=1, nonce=bytes(15))
    with pytest.raises(auth.InvalidRequestError):
        auth.sign_request(IDENTITY, SERVER, "GET", "/", timestamp=-1)
    with pytest.raises(SessionError):
        auth.sign_request(IDENTITY, bytes(31), "GET", "/", timestamp=1, blinded=False)


def test_unencodable_paths_are_typed_errors() -> None:
    with pytest.raises(auth.InvalidRequestError):
        auth.sign_request(IDENTITY, SERVER, "GET", "/\udc80", timestamp=1)
    with pytest.raises(MalformedAuthHeaderError):
        auth.verify_request(_vector_headers(), SERVER, "GET", "/\udc80")


def test_new_nonce_is_fresh() -> None:
    assert len(auth.new_nonce()) == 16
    assert auth.new_nonce() != auth.new_nonce()


def test_signing_path_decodes_the_path_only() -> None:
    assert auth.signing_path("/room/r/reaction/5/%F0%9F%8E%82") == "/room/r/reaction/5/🎂"
    assert auth.signing_path("/room/r/messages/since/3?t=r&x=%20") == (
        "/room/r/messages/since/3?t=r&x=%20"
    )
    assert auth.signing_path("/rooms?") == "/rooms"
    with pytest.raises(MalformedAuthHeaderError):
        auth.signing_path("/room/%FF")


def test_check_timestamp_policy() -> None:
    auth.check_timestamp(1_000_000, now=1_000_000 + 86_400)
    with pytest.raises(TimestampSkewError) as caught:
        auth.check_timestamp(1_000_000, now=1_000_000 + 86_401.5)
    assert caught.value.http_status == 425


# --- Post signatures (§5.6, §5.11) --------------------------------------------------------------


@given(seeds, st.binary(max_size=300))
def test_post_sign_verify_for_15_25_and_05(seed: bytes, data: bytes) -> None:
    identity = Identity.from_seed(seed)
    blind15 = blind15_id(identity, SERVER)
    posts.verify_post(blind15, data, posts.sign_post(identity, SERVER, data))
    blind25 = blind25_key_pair(identity, SERVER).blinded_id
    posts.verify_post(blind25, data, blind25_sign(identity, SERVER, data))
    posts.verify_post(identity.session_id, data, posts.sign_post_unblinded(identity, data))
    with pytest.raises(posts.PostSignatureError):
        posts.verify_post(identity.session_id, data, posts.sign_post(identity, SERVER, data))


def test_post_signature_covers_the_decoded_data_bytes() -> None:
    data = b"\x0a\x03abc" + b"\x80" + bytes(10)  # padded Content bytes
    signature = posts.sign_post(IDENTITY, SERVER, data)
    assert signature == blind15_sign(IDENTITY, SERVER, data)
    author = blind15_id(IDENTITY, SERVER)
    verified = posts.verify_post_fields(
        author.value, base64.b64encode(data).decode(), base64.b64encode(signature).decode()
    )
    assert verified == posts.VerifiedPost(author, data)
    with pytest.raises(posts.PostSignatureError):
        posts.verify_post(author, base64.b64encode(data), signature)


def test_post_vector_signatures_verify_as_posts() -> None:
    for vector in load("session-protocol")["blinding"]["signatures"]:
        identity = Identity.from_seed(bytes.fromhex(vector["ed25519_seed"]))
        server = bytes.fromhex(vector["server_pubkey"])
        signer = (
            blind25_key_pair(identity, server).blinded_id
            if vector["scheme"].startswith("blind25")
            else blind15_id(identity, server)
        )
        message = vector["message_utf8"].encode()
        posts.verify_post(signer, message, bytes.fromhex(vector["signature"]))


@pytest.mark.parametrize(
    ("session_id", "data", "signature", "error"),
    [
        ("03" + "11" * 32, "AA==", "AA==", posts.InvalidPostAuthorError),
        ("00" + "11" * 32, "AA==", "AA==", posts.InvalidPostAuthorError),
        ("05", "AA==", "AA==", posts.InvalidPostAuthorError),
        (V["session_id"], "not base64", "AA==", posts.InvalidPostEncodingError),
        (V["session_id"], "AA==", "AA==", posts.PostSignatureError),
    ],
)
def test_verify_post_fields_errors(
    session_id: str, data: str, signature: str, error: type[SessionError]
) -> None:
    with pytest.raises(error):
        posts.verify_post_fields(session_id, data, signature)


@given(st.text(max_size=70), st.text(max_size=40), st.text(max_size=100))
def test_random_post_fields_give_typed_errors(author: str, data: str, signature: str) -> None:
    with pytest.raises(SessionError):
        posts.verify_post_fields(author, data, signature)


@given(st.sampled_from(["05", "15", "25"]), st.binary(min_size=32, max_size=32), st.binary())
def test_random_post_signatures_give_typed_errors(prefix: str, key: bytes, sig: bytes) -> None:
    author = SessionID.from_key(key) if prefix == "05" else BlindedID.from_key(key, prefix)
    with pytest.raises(posts.PostSignatureError):
        posts.verify_post(author, b"data", sig)


# --- Blinded inbox (§5.10) ----------------------------------------------------------------------


def _ids(version: str, sender: Identity, recipient: Identity) -> tuple[BlindedID, BlindedID]:
    if version == "15":
        return blind15_id(sender, SERVER), blind15_id(recipient, SERVER)
    return (
        blind25_key_pair(sender, SERVER).blinded_id,
        blind25_key_pair(recipient, SERVER).blinded_id,
    )


@given(seeds, seeds, st.binary(max_size=500), st.sampled_from(["15", "25"]))
def test_inbox_round_trip(sender_seed: bytes, recipient_seed: bytes, text: bytes, v: str) -> None:
    sender, recipient = Identity.from_seed(sender_seed), Identity.from_seed(recipient_seed)
    sender_id, recipient_id = _ids(v, sender, recipient)
    payload = inbox.encrypt_for_blinded_recipient(sender, SERVER, recipient_id, text)
    assert payload[0] == 0 and len(payload) == 1 + len(text) + 32 + 16 + 24
    for reader in (recipient, sender):  # inbox for the recipient, outbox for the sender
        opened = inbox.decrypt_blinded_message(reader, SERVER, sender_id, recipient_id, payload)
        assert opened == inbox.InboxMessage(text, sender.session_id, sender_id)


def _independent_payload(
    sender: Identity, recipient_id: BlindedID, plaintext: bytes, embedded_key: bytes
) -> bytes:
    """The blind15 payload built straight from §5.10 with raw libsodium calls."""
    a = sodium.crypto_core_ed25519_scalar_reduce(sender.x25519_secret + bytes(32))
    k = sodium.crypto_core_ed25519_scalar_reduce(hashlib.blake2b(SERVER).digest())
    ka_point = sodium.crypto_scalarmult_ed25519_base_noclamp(
        sodium.crypto_core_ed25519_scalar_mul(k, a)
    )
    point = sodium.crypto_scalarmult_ed25519_noclamp(a, recipient_id.key)
    key = hashlib.blake2b(point + ka_point + recipient_id.key, digest_size=32).digest()
    nonce = bytes(range(24))
    box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext + embedded_key, None, nonce, key
    )
    return b"\x00" + box + nonce


def test_inbox_payload_matches_an_independent_construction() -> None:
    recipient_id = blind15_id(BOB, SERVER)
    ours = inbox.encrypt_for_blinded_recipient(
        ALICE, SERVER, recipient_id, b"hi", nonce=bytes(range(24))
    )
    assert ours == _independent_payload(ALICE, recipient_id, b"hi", ALICE.ed25519_public)


def test_inbox_sender_key_must_blind_to_the_sender_id() -> None:
    sender_id, recipient_id = _ids("15", ALICE, BOB)
    forged = _independent_payload(ALICE, recipient_id, b"hi", BOB.ed25519_public)
    with pytest.raises(inbox.InboxSenderMismatchError):
        inbox.decrypt_blinded_message(BOB, SERVER, sender_id, recipient_id, forged)
    garbage_key = _independent_payload(ALICE, recipient_id, b"hi", b"\xff" * 32)
    with pytest.raises(inbox.InboxSenderMismatchError):
        inbox.decrypt_blinded_message(BOB, SERVER, sender_id, recipient_id, garbage_key)


def test_inbox_third_party_and_mixed_versions_are_refused() -> None:
    sender_id, recipient_id = _ids("15", ALICE, BOB)
    payload = inbox.encrypt_for_blinded_recipient(ALICE, SERVER, recipient_id, b"hi")
    with pytest.raises(inbox.NotOurConversationError):
        inbox.decrypt_blinded_message(IDENTITY, SERVER, sender_id, recipient_id, payload)
    sender25 = blind25_key_pair(ALICE, SERVER).blinded_id
    with pytest.raises(inbox.NotOurConversationError):
        inbox.decrypt_blinded_message(BOB, SERVER, sender25, recipient_id, payload)


def test_inbox_claimed_sender_must_match_the_key() -> None:
    _, recipient_id = _ids("15", ALICE, BOB)
    payload = inbox.encrypt_for_blinded_recipient(ALICE, SERVER, recipient_id, b"hi")
    wrong_sender = blind15_id(IDENTITY, SERVER)
    with pytest.raises(inbox.InboxDecryptError):
        inbox.decrypt_blinded_message(BOB, SERVER, wrong_sender, recipient_id, payload)


def test_inbox_bad_nonce_length() -> None:
    with pytest.raises(SessionError):
        inbox.encrypt_for_blinded_recipient(
            ALICE, SERVER, blind15_id(BOB, SERVER), b"", nonce=bytes(23)
        )


@given(st.binary(max_size=200))
def test_random_inbox_payloads_give_typed_errors(payload: bytes) -> None:
    sender_id, recipient_id = _ids("15", ALICE, BOB)
    with pytest.raises((inbox.MalformedInboxMessageError, inbox.InboxDecryptError)):
        inbox.decrypt_blinded_message(BOB, SERVER, sender_id, recipient_id, payload)


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_truncated_or_flipped_payloads_give_typed_errors(cut: int, flip: int) -> None:
    sender_id, recipient_id = _ids("15", ALICE, BOB)
    payload = inbox.encrypt_for_blinded_recipient(ALICE, SERVER, recipient_id, b"x" * 60)
    damaged = bytearray(payload[: min(cut, len(payload) - 1)])
    if damaged:
        damaged[flip % len(damaged)] ^= 0x01
    with pytest.raises(SessionError) as caught:
        inbox.decrypt_blinded_message(BOB, SERVER, sender_id, recipient_id, bytes(damaged))
    assert isinstance(caught.value, (DecodeError, inbox.InboxDecryptError))


@given(st.binary(min_size=32, max_size=32))
def test_random_blinded_peers_give_typed_errors(key: bytes) -> None:
    recipient_id = blind15_id(BOB, SERVER)
    payload = inbox.encrypt_for_blinded_recipient(ALICE, SERVER, recipient_id, b"x")
    stranger = BlindedID.from_key(key, "15")
    with pytest.raises((inbox.InboxPeerKeyError, inbox.InboxDecryptError)):
        inbox.decrypt_blinded_message(BOB, SERVER, stranger, recipient_id, payload)
    try:
        sent = inbox.encrypt_for_blinded_recipient(ALICE, SERVER, stranger, b"x")
    except inbox.InboxPeerKeyError:
        return
    assert len(sent) == 1 + 1 + 32 + 16 + 24

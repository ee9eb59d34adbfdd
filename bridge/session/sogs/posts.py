"""Signatures of community posts (docs/session-protocol.md §5.6, §5.11).

A post's ``signature`` covers exactly the bytes of its ``data``: the padded ``Content``
protobuf, i.e. the base64-*decoded* ``data`` field, not the base64 text. The signing key is
the one in ``X-SOGS-Pubkey``: the blind15 key on blinding servers, or the account key as an
XEd25519 signature for ``05`` authors.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ids import BlindedID, InvalidId, SessionID, parse_any_id
from bridge.session.blinding import blind15_sign, verify_blinded_signature
from bridge.session.errors import CryptoError, DecodeError
from bridge.session.keys import BadSignatureError, Identity, xed25519_sign, xed25519_verify
from bridge.session.sogs.auth import b64decode_strict

__all__ = [
    "InvalidPostAuthorError",
    "InvalidPostEncodingError",
    "PostSignatureError",
    "VerifiedPost",
    "sign_post",
    "sign_post_unblinded",
    "verify_post",
    "verify_post_fields",
]

PostAuthor = SessionID | BlindedID


class InvalidPostAuthorError(DecodeError):
    """A post's ``session_id`` is not a ``05``, ``15`` or ``25`` id."""


class InvalidPostEncodingError(DecodeError):
    """A post's ``data`` or ``signature`` is not valid base64 of the right size."""


class PostSignatureError(CryptoError):
    """A post's signature does not verify against its author."""


@dataclass(frozen=True, slots=True)
class VerifiedPost:
    """A post whose signature verified: its author and its (still padded) ``Content`` bytes."""

    author: PostAuthor
    data: bytes


def sign_post(identity: Identity, server_pubkey: bytes, data: bytes) -> bytes:
    """Sign a post's padded ``Content`` bytes with the blind15 key for this server (§5.6)."""
    return blind15_sign(identity, server_pubkey, data)


def sign_post_unblinded(identity: Identity, data: bytes) -> bytes:
    """Sign a post as a ``05`` author (servers without blinding): XEd25519 (§1.4, §5.6)."""
    return xed25519_sign(identity, data)


def verify_post(author: PostAuthor, data: bytes, signature: bytes) -> None:
    """Verify a post signature (§5.11); raise :class:`PostSignatureError` if it fails.

    ``15``/``25`` authors: plain Ed25519 under the blinded key. ``05`` authors: XEd25519
    under the positive Ed25519 point of their X25519 key.
    """
    try:
        if isinstance(author, SessionID):
            xed25519_verify(author.key, data, signature)
        else:
            verify_blinded_signature(author, data, signature)
    except BadSignatureError as exc:
        raise PostSignatureError(f"post signature does not verify for {author}") from exc


def _parse_author(session_id: str) -> PostAuthor:
    try:
        author = parse_any_id(session_id)
    except InvalidId as exc:
        raise InvalidPostAuthorError(f"invalid post author: {exc}") from exc
    if not isinstance(author, SessionID | BlindedID):
        raise InvalidPostAuthorError("post author must be a 05, 15 or 25 id")
    return author


def verify_post_fields(session_id: str, data_b64: str, signature_b64: str) -> VerifiedPost:
    """Check a message object's ``session_id``, ``data`` and ``signature`` fields (§5.5).

    Returns the author and the decoded ``data`` (unpadding and protobuf parsing are the
    caller's), or raises a :class:`DecodeError` or :class:`PostSignatureError`.
    """
    author = _parse_author(session_id)
    try:
        data = b64decode_strict(data_b64)
        signature = b64decode_strict(signature_b64)
    except DecodeError as exc:
        raise InvalidPostEncodingError("post data or signature is not base64") from exc
    verify_post(author, data, signature)
    return VerifiedPost(author, data)

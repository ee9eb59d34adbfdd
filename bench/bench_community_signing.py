"""Cost of community (SOGS) signing next to the bare libsodium calls it is built on.

Run: ``.venv/bin/python -m bench.bench_community_signing``. Prints µs/op per operation, the
libsodium floor it is compared with, and the ratio. It prints; it never asserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import nacl.bindings as sodium

from bridge.session.blinding import (
    blind15_candidates,
    blind15_id,
    blind15_key_pair,
    blind15_sign_with,
)
from bridge.session.keys import Identity
from bridge.session.sogs import auth, posts

TARGET_SECONDS = 0.3
SERVER = bytes.fromhex("a03c383cf63c3c4efe67acc52112a6dd734b3a946b9545f488aaa93da7991238")
POST_DATA = bytes(range(256)) * 2  # a typical padded Content is a few hundred bytes
PATH = "/room/lokinet/messages/since/12345?t=r&reactors=20"


@dataclass(frozen=True)
class Row:
    name: str
    operation: Callable[[], object]
    floor_name: str
    floor: Callable[[], object]


def micros_per_op(operation: Callable[[], object]) -> float:
    """Best of three runs, each sized to take about TARGET_SECONDS / 3."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            operation()
        elapsed = time.perf_counter() - start
        if elapsed > TARGET_SECONDS / 10:
            break
        calls *= 2
    rounds = max(1, int(calls * (TARGET_SECONDS / 3) / elapsed))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            operation()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def build_rows() -> list[Row]:
    identity = Identity.from_seed(bytes(range(16)))
    key_pair = blind15_key_pair(identity, SERVER)
    signer = key_pair.blinded_id
    signature = posts.sign_post(identity, SERVER, POST_DATA)
    unblinded_signature = posts.sign_post_unblinded(identity, POST_DATA)
    secret = identity.ed25519_secret
    public = identity.ed25519_public
    signed = sodium.crypto_sign(POST_DATA, secret)
    scalar = sodium.crypto_core_ed25519_scalar_reduce(bytes(range(64)))
    headers = auth.sign_request(identity, SERVER, "GET", PATH, timestamp=1_700_000_000).as_dict()

    def crypto_sign() -> object:
        return sodium.crypto_sign(POST_DATA, secret)

    def crypto_sign_open() -> object:
        return sodium.crypto_sign_open(signed, public)

    def scalarmult_base() -> object:
        return sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)

    def scalarmult() -> object:
        return sodium.crypto_scalarmult_ed25519_noclamp(scalar, public)

    return [
        Row(
            "sign post (blind15)",
            lambda: posts.sign_post(identity, SERVER, POST_DATA),
            "crypto_sign",
            crypto_sign,
        ),
        Row(
            "sign post (blind15, key pair reused)",
            lambda: blind15_sign_with(identity, key_pair, POST_DATA),
            "crypto_sign",
            crypto_sign,
        ),
        Row(
            "verify post (15 author)",
            lambda: posts.verify_post(signer, POST_DATA, signature),
            "crypto_sign_open",
            crypto_sign_open,
        ),
        Row(
            "verify post (05 author, XEd25519)",
            lambda: posts.verify_post(identity.session_id, POST_DATA, unblinded_signature),
            "crypto_sign_open",
            crypto_sign_open,
        ),
        Row(
            "X-SOGS headers (blind15, GET)",
            lambda: auth.sign_request(identity, SERVER, "GET", PATH, timestamp=1_700_000_000),
            "crypto_sign",
            crypto_sign,
        ),
        Row(
            "X-SOGS headers (00, GET)",
            lambda: auth.sign_request(
                identity, SERVER, "GET", PATH, timestamp=1_700_000_000, blinded=False
            ),
            "crypto_sign",
            crypto_sign,
        ),
        Row(
            "verify X-SOGS headers (server)",
            lambda: auth.verify_request(headers, SERVER, "GET", PATH),
            "crypto_sign_open",
            crypto_sign_open,
        ),
        Row(
            "blind15 id from identity",
            lambda: blind15_id(identity, SERVER),
            "scalarmult_ed25519_base_noclamp",
            scalarmult_base,
        ),
        Row(
            "blind15 candidates from Session ID",
            lambda: blind15_candidates(identity.session_id, SERVER),
            "scalarmult_ed25519_noclamp",
            scalarmult,
        ),
    ]


def main() -> None:
    """Measure every row and print the table."""
    print(f"{'operation':<36} {'µs/op':>9}   {'floor (libsodium)':<32} {'µs/op':>9} {'ratio':>6}")
    for row in build_rows():
        ours = micros_per_op(row.operation)
        floor = micros_per_op(row.floor)
        ratio = ours / floor
        print(f"{row.name:<36} {ours:>9.1f}   {row.floor_name:<32} {floor:>9.1f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()

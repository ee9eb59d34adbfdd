"""Cost of the 1:1 message path against the bare libsodium calls it is built on.

Run: ``.venv/bin/python -m bench.bench_one_to_one``. Prints µs/op; never asserts.

The floor for sending is ``crypto_sign`` + ``crypto_box_seal`` over the same padded bytes;
for receiving ``crypto_box_seal_open`` + ``crypto_sign_open`` (PyNaCl exposes only the
combined-mode signing calls, which are what :mod:`bridge.session.onetoone` uses too).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import nacl.bindings as sodium

from bridge.session.messages import Profile, VisibleMessage, content_to_proto
from bridge.session.onetoone import MessageKeys, decode_direct_message, encode_direct_message
from bridge.session.padding import pad_message

TIMESTAMP = 1_700_000_000_000
BODY = (
    "Hello from Matrix! This is a typical bridged text message, "
    "about one hundred characters long. Ok?"
)


def _time_per_op(function: Callable[[], object], min_seconds: float = 0.5) -> float:
    """Microseconds per call, from the best of 5 runs of a calibrated batch."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            function()
        if time.perf_counter() - start > min_seconds / 10:
            break
        loops *= 2
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            function()
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6


def main() -> None:
    """Print the send and receive costs next to their libsodium floors."""
    sender = MessageKeys.from_seed(bytes(range(32)))
    recipient = MessageKeys.from_seed(bytes(range(32, 64)))
    message = VisibleMessage(
        body=BODY, profile=Profile("Alice (Matrix)", "http://filev2.getsession.org/file/123")
    )
    data = encode_direct_message(sender, recipient.session_id, message, TIMESTAMP)
    padded = pad_message(content_to_proto(message))
    signed_part = padded + sender.ed25519_public_key + recipient.x25519_public_key
    sealed = sodium.crypto_box_seal(
        padded
        + sender.ed25519_public_key
        + sodium.crypto_sign(signed_part, sender.ed25519_secret_key)[:64],
        recipient.x25519_public_key,
    )
    signature = sodium.crypto_sign(signed_part, sender.ed25519_secret_key)[:64]

    def floor_send() -> None:
        sig = sodium.crypto_sign(signed_part, sender.ed25519_secret_key)[:64]
        sodium.crypto_box_seal(
            padded + sender.ed25519_public_key + sig, recipient.x25519_public_key
        )

    def floor_receive() -> None:
        sodium.crypto_box_seal_open(
            sealed, recipient.x25519_public_key, recipient.x25519_private_key
        )
        sodium.crypto_sign_open(signature + signed_part, sender.ed25519_public_key)

    rows = [
        (
            "send: encode_direct_message (encode+pad+sign+seal+wrap+b64)",
            lambda: encode_direct_message(sender, recipient.session_id, message, TIMESTAMP),
            "floor: crypto_sign + crypto_box_seal",
            floor_send,
        ),
        (
            "receive: decode_direct_message (b64+unwrap+open+verify+parse)",
            lambda: decode_direct_message(recipient, data),
            "floor: crypto_box_seal_open + crypto_sign_open",
            floor_receive,
        ),
    ]
    print(
        f"1:1 text message: {len(BODY)}-char body with profile, {len(padded)} padded bytes, "
        f"{len(data)} base64 chars stored"
    )
    for name, function, floor_name, floor in rows:
        cost, floor_cost = _time_per_op(function), _time_per_op(floor)
        print(f"{name:<66} {cost:9.1f} µs/op")
        print(f"{floor_name:<66} {floor_cost:9.1f} µs/op")
        print(f"{'  ratio':<66} {cost / floor_cost:9.2f} x")
    # Not in the floor but required by §3.2 step 5: the sender's Session ID. libsodium's
    # conversion also checks that the key is in the main subgroup (a scalar multiplication).
    to_session_id = _time_per_op(
        lambda: sodium.crypto_sign_ed25519_pk_to_curve25519(sender.ed25519_public_key)
    )
    print(
        f"{'  of which crypto_sign_ed25519_pk_to_curve25519 (sender id)':<66} "
        f"{to_session_id:9.1f} µs/op"
    )


if __name__ == "__main__":
    main()

"""The encryption traffic of appservice transactions (MSC2409 to-device, MSC3202 device lists
and one-time-key counts) is taken from either field name and handed over whole."""

from __future__ import annotations

import json

from bridge.matrix.transactions import parse_transaction

TO_DEVICE = {
    "type": "m.room.encrypted",
    "sender": "@a:x",
    "to_user_id": "@bot:x",
    "to_device_id": "DEV",
    "content": {"algorithm": "m.olm.v1.curve25519-aes-sha2"},
}
LISTS = {"changed": ["@a:x"], "left": []}
COUNTS = {"@bot:x": {"DEV": {"signed_curve25519": 3}}}


def test_stable_names() -> None:
    body = {"events": [], "to_device": [TO_DEVICE], "device_lists": LISTS,
            "device_one_time_keys_count": COUNTS}  # fmt: skip
    txn = parse_transaction("1", json.dumps(body))
    assert txn.to_device == [TO_DEVICE]
    assert txn.device_lists == LISTS
    assert txn.otk_counts == COUNTS


def test_unstable_names() -> None:
    body = {
        "events": [],
        "de.sorunome.msc2409.to_device": [TO_DEVICE],
        "org.matrix.msc3202.device_lists": LISTS,
        "org.matrix.msc3202.device_one_time_keys_count": COUNTS,
    }
    txn = parse_transaction("1", json.dumps(body))
    assert (txn.to_device, txn.device_lists, txn.otk_counts) == ([TO_DEVICE], LISTS, COUNTS)


def test_malformed_parts_are_dropped_not_refused() -> None:
    body = {"events": [], "to_device": [1, "x", TO_DEVICE], "device_lists": [],
            "device_one_time_keys_count": "many"}  # fmt: skip
    txn = parse_transaction("1", json.dumps(body))
    assert txn.to_device == [TO_DEVICE]
    assert txn.device_lists == {} and txn.otk_counts == {}


def test_absent_when_not_sent() -> None:
    txn = parse_transaction("1", json.dumps({"events": []}))
    assert (txn.to_device, txn.device_lists, txn.otk_counts) == ([], {}, {})

"""Kept outgoing messages: JSON round trip, and bad kept data is a typed error."""

from __future__ import annotations

import contextlib
import json
from base64 import b64encode
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session.keys import Identity
from bridge.session.messages import Unsend, VisibleMessage
from bridge.session.onetoone import MessageKeys, decode_direct_message
from bridge.session.outgoing import BadOutgoingMessage, OutgoingMessage, encode_outgoing


def test_round_trip_and_sync_copy() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    keys = MessageKeys.from_seed(alice.ed25519_seed)
    bob_id = bob.session_id.value
    kept = encode_outgoing(
        keys, bob_id, VisibleMessage(body="hi"), 1_700_000_000_000, 60_000, sync_copy=True
    )
    again = OutgoingMessage.from_json(json.loads(json.dumps(kept.to_json())))
    assert again == kept and kept.sync_data is not None and kept.unsend_target is None
    got = decode_direct_message(MessageKeys.from_seed(bob.ed25519_seed), b64encode(again.data))
    assert got.timestamp == 1_700_000_000_000 and got.content.body == "hi"  # type: ignore[union-attr]
    unsend = encode_outgoing(keys, bob_id, Unsend(5, keys.session_id), 6, 60_000, sync_copy=False)
    assert unsend.unsend_target == 5 and unsend.sync_data is None
    assert unsend.expired(60_006) and not unsend.expired(60_005)


@pytest.mark.parametrize(
    "value",
    [None, [], {}, {"recipient": "05", "timestamp": "1", "ttl_ms": 1, "data": ""},
     {"recipient": "05", "timestamp": 1, "ttl_ms": 1, "data": "!!"},
     {"recipient": "05", "timestamp": True, "ttl_ms": 1, "data": ""},
     {"recipient": "05", "timestamp": 1, "ttl_ms": 1, "data": "", "unsend_target": "x"}],
)  # fmt: skip
def test_bad_kept_messages_are_typed_errors(value: Any) -> None:
    with pytest.raises(BadOutgoingMessage):
        OutgoingMessage.from_json(value)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_parses_or_is_a_typed_error(value: Any) -> None:
    with contextlib.suppress(BadOutgoingMessage):
        OutgoingMessage.from_json(value)

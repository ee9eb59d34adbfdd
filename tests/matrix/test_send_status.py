"""The ``com.beeper.message_send_status`` content, as mautrix's type serializes it."""

from __future__ import annotations

from mautrix.types import EventType

from bridge.matrix.send import MSS_EVENT_TYPE, send_status_content


def test_a_permanent_failure() -> None:
    assert str(MSS_EVENT_TYPE) == "com.beeper.message_send_status"
    assert MSS_EVENT_TYPE.t_class == EventType.Class.MESSAGE
    assert send_status_content("$e", ok=False, message="too big").serialize() == {
        "m.relates_to": {"rel_type": "m.reference", "event_id": "$e"},
        "network": "session",
        "status": "FAIL_PERMANENT",
        "reason": "m.foreign_network_error",
        "message": "too big",
    }


def test_a_retriable_failure_and_a_success() -> None:
    retriable = send_status_content("$e", ok=False, retriable=True).serialize()
    assert (retriable["status"], retriable["message"]) == ("FAIL_RETRIABLE", "")
    assert send_status_content("$e", ok=True).serialize() == {
        "m.relates_to": {"rel_type": "m.reference", "event_id": "$e"},
        "network": "session",
        "status": "SUCCESS",
    }

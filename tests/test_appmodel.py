"""The receiving-apps model (tests/appmodel.py) applies each rule it claims to."""

from __future__ import annotations

from bridge.session.messages import (
    DisappearingSettings,
    ExpiryMode,
    Profile,
    Reaction,
    Unsend,
    VisibleMessage,
)
from tests.appmodel import ContactEntry, SessionApp

ME = "05" + "11" * 32
ALICE = "05" + "22" * 32
BOB = "05" + "33" * 32


def test_profile_gated_by_update_time_and_reset_without_picture() -> None:
    app = SessionApp(ME)
    pic = Profile("Alice", "http://fs/file/a", b"k" * 32, 100)
    assert app.receive_dm(ALICE, 1, VisibleMessage(body="a", profile=pic))
    assert app.profiles[ALICE].avatar_url == "http://fs/file/a"
    older = Profile("Old name", None, None, 99)
    assert app.receive_dm(ALICE, 2, VisibleMessage(body="b", profile=older))
    assert app.profiles[ALICE].name == "Alice"  # the message is shown, its profile not applied
    same = Profile("Same time", None, None, 100)
    app.receive_dm(ALICE, 3, VisibleMessage(body="c", profile=same))
    assert app.profiles[ALICE].name == "Alice"
    newer_no_picture = Profile("Alice", None, None, 101)
    app.receive_dm(ALICE, 4, VisibleMessage(body="d", profile=newer_no_picture))
    assert app.profiles[ALICE].avatar_url is None  # the avatar was reset
    zero = SessionApp(ME)
    zero.receive_dm(BOB, 1, VisibleMessage(profile=Profile("B1", updated_seconds=0)))
    zero.receive_dm(BOB, 2, VisibleMessage(profile=Profile("B2")))
    assert zero.profiles[BOB].name == "B2"  # both 0: applied


def test_sync_copy_dropped_when_a_newer_contacts_config_lacks_or_hides_its_target() -> None:
    phone = SessionApp(ME)
    copy = VisibleMessage(body="sent elsewhere", sync_target=ALICE)
    assert phone.receive_dm(ME, 10, copy)  # no Contacts config known: kept
    phone.set_contacts({BOB: ContactEntry()}, updated_ms=100)
    verdict = phone.receive_dm(ME, 20, copy)
    assert not verdict and "missing" in verdict.reason
    assert phone.receive_dm(ME, 200, copy)  # the config is older than this message
    phone.set_contacts({ALICE: ContactEntry(hidden=True)}, updated_ms=1000)
    assert not phone.receive_dm(ME, 300, copy)
    phone.set_contacts({ALICE: ContactEntry()}, updated_ms=1000)
    assert phone.receive_dm(ME, 301, copy)
    assert phone.receive_dm(ME, 302, Reaction(1, ALICE, "👍", sync_target=ALICE))
    assert not phone.receive_dm(ME, 303, Reaction(1, BOB, "👍", sync_target=BOB))
    timer = DisappearingSettings(ExpiryMode.DELETE_AFTER_SEND, 60, sync_target=BOB)
    assert not phone.receive_dm(ME, 304, timer)
    assert phone.receive_dm(ME, 305, Unsend(1, ME))  # no syncTarget: the rule does not apply


def test_android_drops_a_second_timestamp_from_any_sender() -> None:
    android, desktop = SessionApp(ME, "android"), SessionApp(ME, "desktop")
    for app in (android, desktop):
        assert app.receive_dm(ALICE, 7, VisibleMessage(body="one"))
    second = android.receive_dm(BOB, 7, VisibleMessage(body="two"))
    assert not second and "timestamp" in second.reason
    assert desktop.receive_dm(BOB, 7, VisibleMessage(body="two"))
    assert android.receive_dm(BOB, 8, VisibleMessage(body="two"))


def test_desktop_community_dedup_by_author_and_posted() -> None:
    desktop, android = SessionApp(ME), SessionApp(ME, "android")
    for app in (desktop, android):
        assert app.receive_community(ALICE, 1.5, VisibleMessage(body="v1"))
    assert not desktop.receive_community(ALICE, 1.5, VisibleMessage(body="v2 (edited)"))
    assert android.receive_community(ALICE, 1.5, VisibleMessage(body="v2 (edited)"))
    assert desktop.receive_community(BOB, 1.5, VisibleMessage(body="other author"))
    assert desktop.receive_community(ALICE, 1.6, VisibleMessage(body="new post"))


def test_blocked_contacts_and_signed_timestamps() -> None:
    app = SessionApp(ME)
    app.set_contacts({ALICE: ContactEntry(blocked=True), BOB: ContactEntry()}, 1)
    blocked = app.receive_dm(ALICE, 5, VisibleMessage(body="hi"))
    assert not blocked and blocked.reason == "sender is blocked"
    assert not app.receive_community(ALICE, 2.0, VisibleMessage(body="post"))
    assert app.receive_dm(BOB, 6, VisibleMessage(body="hi", sig_timestamp=6))
    assert not app.receive_dm(BOB, 7, VisibleMessage(body="hi", sig_timestamp=8))
    assert [t for _, t, _ in app.kept] == [6]

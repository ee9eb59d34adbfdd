from __future__ import annotations

from bridge.commands.permissions import Level, level_for, level_summary, no_login_refusal

PERMISSIONS = {"*": "relay", "example.com": "user", "@boss:example.com": "admin"}


def test_exact_mxid_wins_over_domain() -> None:
    assert level_for("@boss:example.com", PERMISSIONS) is Level.ADMIN


def test_domain_then_wildcard() -> None:
    assert level_for("@alice:example.com", PERMISSIONS) is Level.USER
    assert level_for("@mallory:elsewhere.org", PERMISSIONS) is Level.RELAY


def test_no_match_means_no_access() -> None:
    assert level_for("@alice:example.com", {"other.org": "admin"}) is Level.NONE


def test_domain_is_matched_exactly_not_as_suffix() -> None:
    assert level_for("@eve:evil-example.com", {"example.com": "admin"}) is Level.NONE
    assert level_for("@eve:example.com.evil", {"example.com": "admin"}) is Level.NONE


def test_levels_are_ordered() -> None:
    assert Level.NONE < Level.RELAY < Level.USER < Level.ADMIN


BOT = "@bot:example.com"


def test_refusals_tell_each_level_what_it_may_do() -> None:
    relay = no_login_refusal(Level.RELAY, "message", BOT)
    assert "relayed when relay is on" in relay and "`login`" not in relay
    nobody = no_login_refusal(Level.NONE, "message", BOT)
    assert "not allowed to use this bridge" in nobody and "`login`" not in nobody
    assert "`login`" in no_login_refusal(Level.USER, "message", BOT)
    assert "`login`" not in no_login_refusal(Level.RELAY, "direct chat", BOT)
    assert "`login`" not in level_summary(Level.RELAY)
    assert "`login`" not in level_summary(Level.NONE)

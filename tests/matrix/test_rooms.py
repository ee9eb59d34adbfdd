"""Power levels of portal rooms."""

from __future__ import annotations

from bridge.matrix.rooms import portal_power_levels

BOT = "@sessionbot:example.org"


def test_the_user_who_asked_for_a_portal_is_its_admin() -> None:
    created = portal_power_levels(BOT, bot_is_creator=True, admins=["@carol:example.org"])
    # A creating bot is never listed (room v12); the opener gets 100 and may redact.
    assert created["users"] == {"@carol:example.org": 100}
    assert created["redact"] <= 100
    joined = portal_power_levels(BOT)
    assert joined["users"] == {BOT: 100}
    assert "users" not in portal_power_levels(BOT, bot_is_creator=True)

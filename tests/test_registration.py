from __future__ import annotations

import re

from bridge.config import Config
from bridge.registration import ghost_user_regex, make_registration, new_token


def configured() -> Config:
    config = Config()
    config.homeserver.domain = "chat.example.com"
    config.appservice.as_token = new_token()
    config.appservice.hs_token = new_token()
    return config


def test_tokens_are_long_random_and_distinct() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == 64 for t in tokens)


def test_registration_shape() -> None:
    config = configured()
    reg = make_registration(config)
    assert reg["id"] == "session"
    assert reg["url"] == config.appservice.address
    assert reg["as_token"] == config.appservice.as_token
    assert reg["hs_token"] == config.appservice.hs_token
    assert reg["as_token"] != reg["hs_token"]
    assert reg["rate_limited"] is False
    assert reg["receive_ephemeral"] is True
    assert reg["de.sorunome.msc2409.push_ephemeral"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", reg["sender_localpart"])
    assert all(ns["exclusive"] for ns in reg["namespaces"]["users"])


def test_user_namespace_covers_ghosts_and_bot_only() -> None:
    reg = make_registration(configured())
    regexes = [re.compile(ns["regex"]) for ns in reg["namespaces"]["users"]]

    def matched(mxid: str) -> bool:
        return any(r.match(mxid) for r in regexes)

    assert matched("@sessionbot:chat.example.com")
    assert matched("@session_05" + "ab" * 32 + ":chat.example.com")
    assert not matched("@alice:chat.example.com")
    assert not matched("@sessionbot:chat.example.com.evil.org")
    assert not matched("@session_05ab:chatXexample.com")  # the dot is escaped


def test_ghost_regex_from_template_with_suffix() -> None:
    regex = re.compile(ghost_user_regex("s.{userid}_bridge", "a.b"))
    assert regex.match("@s.05ff_bridge:a.b")
    assert not regex.match("@sx05ff_bridge:a.b")

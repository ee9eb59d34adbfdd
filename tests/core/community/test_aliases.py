"""Portal aliases of community rooms: their form, and recognising them in alias queries."""

from __future__ import annotations

from bridge.core.community.aliases import (
    MAX_ALIAS_LENGTH,
    alias_localpart,
    alias_prefix,
    alias_room,
    matches,
)
from bridge.session.sogs.urls import CommunityServerRef, parse_community_url

OFFICIAL = parse_community_url(
    "https://open.getsession.org/lobby"
    "?public_key=a03c383cf63c3c4efe67acc52112a6dd734b3a946b9545f488aaa93da7991238"
).server
DEVNET = CommunityServerRef("http://127.0.0.1:40123", bytes.fromhex("1b" * 32))


def test_the_alias_names_room_host_port_and_key() -> None:
    assert alias_prefix("session_{userid}") == "session_"
    official = alias_localpart("session_", "example.org", OFFICIAL, "lobby")
    assert official == "session_lobby.open.getsession.org.a03c383c"
    devnet = alias_localpart("session_", "localhost", DEVNET, "Dev_room-1")
    assert devnet == "session_Dev_room-1.127.0.0.1-40123.1b1b1b1b"


def test_another_key_or_server_is_another_alias() -> None:
    other_key = CommunityServerRef(OFFICIAL.base_url, bytes(32))
    other_host = CommunityServerRef("https://sogs.example.net", OFFICIAL.pubkey)
    aliases = {
        alias_localpart("session_", "example.org", server, "lobby")
        for server in (OFFICIAL, other_key, other_host)
    }
    assert len(aliases) == 3


def test_a_very_long_host_still_gives_a_valid_alias() -> None:
    server = CommunityServerRef(f"https://{'a' * 60}.{'b' * 60}.{'c' * 60}.example", bytes(32))
    localpart = alias_localpart("session_", "example.org", server, "r" * 64)
    alias = f"#{localpart}:example.org"
    assert len(alias) <= MAX_ALIAS_LENGTH
    assert alias_room(alias, "session_", "example.org") == "r" * 64
    assert matches(alias, "session_", "example.org", server, "r" * 64)


def test_alias_queries_are_recognised_only_in_our_form() -> None:
    alias = f"#{alias_localpart('session_', 'example.org', OFFICIAL, 'lobby')}:example.org"
    assert alias_room(alias, "session_", "example.org") == "lobby"
    assert matches(alias, "session_", "example.org", OFFICIAL, "lobby")
    assert not matches(alias, "session_", "example.org", DEVNET, "lobby")
    for other in (
        alias.replace(":example.org", ":elsewhere.org"),
        alias.replace("#session_", "#other_"),
        "#session_lobby:example.org",  # no server part
        "#session_bad room.host.12345678:example.org",
        "#session_.host.12345678:example.org",
    ):
        assert alias_room(other, "session_", "example.org") is None, other

"""What a Matrix user is told when a community server cannot be used: an unreachable server
is never called a refusal, and a wrong public key is named as such."""

from __future__ import annotations

import aiohttp

from bridge.core.community.refusals import lookup_refusal
from bridge.session.errors import SessionError
from bridge.session.sogs.errors import CommunityUnreachable
from bridge.session.sogs.transport import error_for_status
from bridge.session.sogs.urls import CommunityServerRef

SERVER = CommunityServerRef("https://sogs.example.net", bytes(32))


def unreachable(cause: BaseException) -> SessionError:
    try:
        raise CommunityUnreachable("cannot reach") from cause
    except CommunityUnreachable as e:
        return e


def test_unreachable_and_timeouts_are_not_refusals() -> None:
    down = lookup_refusal(SERVER, "lobby", unreachable(aiohttp.ClientConnectionError()))
    assert "could not reach" in down and SERVER.base_url in down
    slow = lookup_refusal(SERVER, "lobby", unreachable(TimeoutError()))
    assert "did not answer in time" in slow
    for text in (down, slow):
        assert "refused" not in text


def test_refusals_say_what_is_wrong() -> None:
    def said(status: int) -> str:
        return lookup_refusal(SERVER, "lobby", error_for_status(status, "no", room="lobby"))

    assert "not the key of this server" in said(401)
    assert "There is no room `lobby`" in said(404)
    assert "does not let me into" in said(403)
    assert "try again later" in said(503) and "refused" not in said(503)
    assert "try again later" in said(429)
    assert "refused" in said(400)

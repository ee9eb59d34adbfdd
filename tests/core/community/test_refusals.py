"""What a Matrix user is told when a community server cannot be used: an unreachable server
is never called a refusal, and a wrong public key is named as such."""

from __future__ import annotations

import aiohttp

from bridge.core.community.actors import call_server
from bridge.core.community.refusals import lookup_refusal
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
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


async def _fails(error: Exception) -> str:
    async def work() -> None:
        raise error

    try:
        await call_server(work())
    except (PermanentFailure, TemporaryFailure) as e:
        return str(e)
    raise AssertionError("call_server did not fail")


async def test_outbox_failures_describe_without_addresses_or_server_words() -> None:
    down = unreachable(aiohttp.ClientConnectionError())
    down.args = ("cannot reach community server http://10.0.0.5:3000: ClientConnectionError",)
    assert await _fails(down) == "the community server cannot be reached"
    banned = error_for_status(403, "banned from http://10.0.0.5:3000 by proxy 10.0.0.9")
    assert await _fails(banned) == (
        "the community server does not allow it (banned, or no permission)"
    )
    assert await _fails(error_for_status(502, "<html>10.0.0.9</html>")) == (
        "the community server is busy (HTTP 502)"
    )
    assert "10.0.0" not in await _fails(error_for_status(418, "teapot at 10.0.0.9"))


def test_a_lookup_refusal_gives_the_status_not_the_servers_words() -> None:
    text = lookup_refusal(SERVER, "lobby", error_for_status(418, "internal 10.0.0.9:8080"))
    assert (
        text == "The community server at https://sogs.example.net refused the request (HTTP 418)."
    )

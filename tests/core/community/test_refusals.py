"""What a Matrix user is told when a community server cannot be used: an unreachable server
is never called a refusal, and a wrong public key is named as such."""

from __future__ import annotations

import aiohttp
import pytest

from bridge.core.community.actors import call_server
from bridge.core.community.refusals import lookup_refusal
from bridge.core.portal.health import reason
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
from bridge.session.errors import SessionError
from bridge.session.netguard import DestinationRefused
from bridge.session.sogs.errors import CommunityUnreachable
from bridge.session.sogs.transport import error_for_status, short_reason
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


PYSOGS_404 = (
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.</p>\n"
)


def test_a_servers_html_page_becomes_its_status_and_a_short_reason() -> None:
    gone = error_for_status(404, PYSOGS_404)
    assert str(gone) == "HTTP 404: Not Found"
    assert reason(gone) == "CommunityNotFound: HTTP 404: Not Found"  # the `status` line
    room = error_for_status(404, PYSOGS_404, room="lobby")
    assert str(room) == "room 'lobby' not found: Not Found"
    assert (
        str(error_for_status(502, "  <HTML><body>proxy</body></HTML>")) == "HTTP 502: Bad Gateway"
    )
    assert str(error_for_status(599, "")) == "HTTP 599: refused"


def test_plain_reasons_are_kept_on_one_short_line() -> None:
    assert short_reason(403, "Banned\n\tfrom this room\x1b[31m") == "Banned from this room[31m"
    long = short_reason(400, "word " * 100)
    assert len(long) == 120 and long.endswith("…") and "\n" not in long


async def test_edit_and_delete_404s_name_the_message_or_room_not_the_server() -> None:
    message = await _fails(error_for_status(404, PYSOGS_404))
    assert message == "the message or its room is no longer on the community server (deleted?)"
    room = await _fails(error_for_status(404, PYSOGS_404, room="lobby"))
    assert room == "the room is no longer on the community server"
    for text in (message, room):
        assert "<" not in text and "Not Found" not in text


async def test_an_internal_address_is_named_neither_in_the_answer_nor_in_a_failure() -> None:
    refused = DestinationRefused("localhost is a loopback address (127.0.0.1)")
    server = CommunityServerRef("http://localhost:8080", bytes(32))
    text = lookup_refusal(server, "lobby", refused)
    assert text.startswith("I do not connect to the community server at http://localhost:8080")
    assert "127.0.0.1" not in text

    async def post() -> None:
        raise refused

    with pytest.raises(PermanentFailure, match="internal address") as failed:
        await call_server(post())
    assert "127.0.0.1" not in str(failed.value)

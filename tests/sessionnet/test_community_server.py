"""The devnet community server's checks (docs/session-protocol.md §5.2-§5.10, vectors §8.3)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bridge.session.keys import Identity
from bridge.session.padding import pad_message
from bridge.session.sogs.auth import MAX_CLOCK_SKEW_SECONDS, sign_request
from bridge.session.sogs.posts import sign_post
from tests.sessionnet.community import CommunityServer
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import serve
from tests.vectors import load

V = load("session-protocol")["sogs_auth"]
VECTOR_ROOM = RoomSpec("the-best-room", "The best room")


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Running:
    server: CommunityServer
    url: str
    http: aiohttp.ClientSession

    async def send(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.url + path, data=body or None, headers=headers
        ) as resp:
            raw = await resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(raw) if "json" in kind else raw

    async def signed(
        self, who: Identity, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body).encode()
        ts = kwargs.pop("timestamp", int(self.server.clock()))
        auth = sign_request(who, self.server.pubkey, method, path, raw, timestamp=ts, **kwargs)
        return await self.send(method, path, auth.as_dict(), raw)


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[Running]:
    kwargs.setdefault("rooms", [VECTOR_ROOM, RoomSpec("other", "Other")])
    server = CommunityServer(**kwargs)
    runner, url = await serve("127.0.0.1", server.make_app())
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(server, url, http)
    finally:
        await runner.cleanup()


def vector_headers(blinded: bool, with_body: bool) -> dict[str, str]:
    kind = "blinded" if blinded else "unblinded"
    suffix = "with_body" if with_body else "no_body"
    return {
        "X-SOGS-Pubkey": V[f"{kind}_pubkey_header"],
        "X-SOGS-Timestamp": V["timestamp"],
        "X-SOGS-Nonce": V["nonce_b64"],
        "X-SOGS-Signature": V[f"{kind}_signature_{suffix}"],
    }


def vector_server(clock: Callable[[], float] | None = None, **kwargs: Any) -> Any:
    return running(
        pubkey=bytes.fromhex(V["server_pubkey"]),
        clock=clock or Clock(float(V["timestamp"])),
        **kwargs,
    )


@pytest.mark.parametrize("with_body", [False, True])
@pytest.mark.parametrize("blinded", [True, False])
async def test_desktop_vectors_are_accepted(blinded: bool, with_body: bool) -> None:
    body = V["body_utf8"].encode() if with_body else b""
    async with vector_server(require_blind=blinded) as net:
        status, reply = await net.send(
            V["method"], V["path"], vector_headers(blinded, with_body), body
        )
        assert (status, reply) == (200, [])
        expected = V["blinded_pubkey_header"] if blinded else V["session_id"]
        assert expected in net.server.state.rooms["the-best-room"].active


async def test_a_tampered_signature_is_401() -> None:
    headers = vector_headers(True, False)
    signature = bytearray(base64.b64decode(headers["X-SOGS-Signature"]))
    signature[0] ^= 1
    headers["X-SOGS-Signature"] = base64.b64encode(bytes(signature)).decode()
    async with vector_server() as net:
        status, _ = await net.send("GET", V["path"], headers)
        assert status == 401
        # the same headers on another path do not verify either
        status, _ = await net.send("GET", "/room/other", vector_headers(True, False))
        assert status == 401


@pytest.mark.parametrize(("offset", "expected"), [(-1, 200), (1, 425)])
async def test_timestamps_beyond_24_hours_are_425(offset: int, expected: int) -> None:
    for sign in (1, -1):
        clock = Clock(float(V["timestamp"]) + sign * (MAX_CLOCK_SKEW_SECONDS + offset))
        async with vector_server(clock) as net:
            status, _ = await net.send("GET", V["path"], vector_headers(True, False))
            assert status == expected


async def test_a_reused_nonce_is_425() -> None:
    async with vector_server() as net:
        assert (await net.send("GET", V["path"], vector_headers(True, False)))[0] == 200
        assert (await net.send("GET", V["path"], vector_headers(True, False)))[0] == 425


async def test_malformed_partial_or_unblinded_auth_is_400() -> None:
    async with vector_server() as net:  # requires blinding
        status, _ = await net.send("GET", V["path"], vector_headers(False, False))
        assert status == 400
        partial = vector_headers(True, False)
        del partial["X-SOGS-Nonce"]
        assert (await net.send("GET", V["path"], partial))[0] == 400
        bad_key = vector_headers(True, False) | {"X-SOGS-Pubkey": "05" + "11" * 32}
        assert (await net.send("GET", V["path"], bad_key))[0] == 400


def post_body(identity: Identity, server_pubkey: bytes, data: bytes) -> dict[str, Any]:
    padded = pad_message(data)
    return {
        "data": base64.b64encode(padded).decode(),
        "signature": base64.b64encode(sign_post(identity, server_pubkey, padded)).decode(),
    }


async def test_post_signatures_are_checked() -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    async with running() as net:
        forged = post_body(mallory, net.server.pubkey, b"\x0a\x00")
        status, _ = await net.signed(alice, "POST", "/room/other/message", forged)
        assert status == 400
        good = post_body(alice, net.server.pubkey, b"\x0a\x00")
        status, msg = await net.signed(alice, "POST", "/room/other/message", good)
        assert status == 201 and msg["data"] == good["data"]
        assert (await net.signed(alice, "POST", "/room/other/message", {}))[0] == 400
        status, _ = await net.send("POST", "/room/other/message", {}, json.dumps(good).encode())
        assert status == 401  # anonymous
        edit = f"/room/other/message/{msg['id']}"
        status, _ = await net.signed(
            mallory, "PUT", edit, post_body(mallory, net.server.pubkey, b"")
        )
        assert status == 403


async def test_seqno_edit_delete_and_reaction_semantics() -> None:
    alice = Identity.generate()
    async with running() as net:
        key = net.server.pubkey
        _, first = await net.signed(
            alice, "POST", "/room/other/message", post_body(alice, key, b"1")
        )
        _, second = await net.signed(
            alice, "POST", "/room/other/message", post_body(alice, key, b"2")
        )
        assert (first["seqno"], second["seqno"]) == (1, 2)
        path = f"/room/other/message/{first['id']}"
        assert (await net.signed(alice, "PUT", path, post_body(alice, key, b"1b")))[0] == 200
        _, since = await net.signed(alice, "GET", "/room/other/messages/since/2")
        assert [(m["id"], m["seqno"]) for m in since] == [(first["id"], 3)] and "edited" in since[
            0
        ]
        react = f"/room/other/reaction/{second['id']}/🎂"
        status, added = await net.signed(alice, "PUT", react, {})
        assert (status, added) == (200, {"added": True, "seqno": 4})
        _, with_r = await net.signed(alice, "GET", "/room/other/messages/since/3?t=r&reactors=5")
        assert with_r == [
            {
                "id": second["id"],
                "seqno": 4,
                "reactions": {
                    "🎂": {
                        "index": 0,
                        "count": 1,
                        "reactors": [
                            net.server.state.rooms["other"].posts[second["id"]].session_id
                        ],
                        "you": True,
                    }
                },
            }
        ]
        _, without = await net.signed(alice, "GET", "/room/other/messages/since/3")
        assert without == []  # reaction-only changes need t=r
        assert (await net.signed(alice, "DELETE", path))[0] == 200
        _, gone = await net.signed(alice, "GET", "/room/other/messages/since/4")
        assert gone[0]["data"] is None and gone[0]["deleted"] and "signature" not in gone[0]
        assert (await net.signed(alice, "GET", path))[0] == 404
        _, room = await net.signed(alice, "GET", "/room/other")
        assert room["message_sequence"] == 5


async def test_batch_and_sequence_run_as_the_outer_signer() -> None:
    alice = Identity.generate()
    async with running() as net:
        subs = [
            {"method": "GET", "path": "/capabilities?required=blind,nope"},
            {
                "method": "POST",
                "path": "/room/other/message",
                "json": post_body(alice, net.server.pubkey, b"x"),
            },
            {"method": "GET", "path": "/inbox/since/0"},
            {"method": "GET", "path": "/room/missing"},
        ]
        status, results = await net.signed(alice, "POST", "/batch", subs)
        assert status == 200
        assert [r["code"] for r in results] == [412, 201, 304, 404]
        assert results[0]["body"]["missing"] == ["nope"]
        status, results = await net.signed(alice, "POST", "/sequence", subs)
        assert [r["code"] for r in results] == [412]


async def test_inbox_needs_a_known_recipient_and_blinded_auth() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running() as net:
        bob_id = sign_request(
            bob, net.server.pubkey, "GET", "/", timestamp=int(time.time())
        ).pubkey
        body = {"message": base64.b64encode(b"\x00" * 80).decode()}
        assert (await net.signed(alice, "POST", f"/inbox/{bob_id}", body))[0] == 404
        assert (await net.signed(bob, "GET", "/inbox"))[0] == 200  # bob has now used it
        status, item = await net.signed(alice, "POST", f"/inbox/{bob_id}", body)
        assert status == 201 and item["recipient"] == bob_id
        _, inbox = await net.signed(bob, "GET", "/inbox/since/0")
        assert [i["id"] for i in inbox] == [item["id"]]
        assert (await net.signed(bob, "GET", f"/inbox/since/{item['id']}"))[0] == 304
        assert (await net.send("GET", "/inbox", {}))[0] == 401


async def test_room_files_and_size_limit() -> None:
    alice = Identity.generate()
    async with running() as net:
        data = b"\x89PNG" + bytes(1000)
        auth = sign_request(
            alice, net.server.pubkey, "POST", "/room/other/file", data, timestamp=int(time.time())
        )
        status, reply = await net.send("POST", "/room/other/file", auth.as_dict(), data)
        assert status == 201
        status, raw = await net.send("GET", f"/room/other/file/{reply['id']}", {})
        assert (status, raw) == (200, data)
        big = bytes(10_000_001)
        auth = sign_request(
            alice, net.server.pubkey, "POST", "/room/other/file", big, timestamp=int(time.time())
        )
        assert (await net.send("POST", "/room/other/file", auth.as_dict(), big))[0] == 413


async def test_configured_room_image_is_served() -> None:
    rooms = [RoomSpec("pics", "Pics", "with an image", image=b"GIF89a...")]
    async with running(rooms=rooms) as net:
        status, room = await net.send("GET", "/room/pics", {})
        assert status == 200 and room["description"] == "with an image"
        status, raw = await net.send("GET", f"/room/pics/file/{room['image_id']}", {})
        assert (status, raw) == (200, b"GIF89a...")

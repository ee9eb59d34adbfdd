"""``encryption.default`` / ``encryption.require`` in portal rooms (README, Encryption): which
rooms are refused, and which new rooms get ``m.room.encryption`` in their initial state."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.errors import MNotFound

from bridge.core.portal.rooms import ENCRYPTED_REFUSAL, UNENCRYPTED_REFUSAL, PortalRooms
from bridge.matrix.rooms import Channel

ENCRYPTED, PLAIN = "!enc:hs", "!plain:hs"


class FakeBot:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def get_state_event(self, room_id: str, event_type: Any) -> dict[str, str]:
        if room_id != ENCRYPTED:
            raise MNotFound(404, "no encryption")
        return {"algorithm": "m.megolm.v1.aes-sha2"}

    async def create_room(self, **kwargs: Any) -> str:
        self.created.append(kwargs)
        return "!new:hs"


def rooms(*, allow: bool, default: bool = False, require: bool = False) -> PortalRooms:
    made = PortalRooms(FakeBot(), None, "@bot:hs")  # type: ignore[arg-type]
    made.allow_encrypted, made.encrypt_new, made.require_encrypted = allow, default, require
    return made


@pytest.mark.parametrize(
    ("allow", "require", "encrypted_room", "plain_room"),
    [
        (False, False, ENCRYPTED_REFUSAL, None),
        (True, False, None, None),
        (True, True, None, UNENCRYPTED_REFUSAL),
    ],
)
async def test_which_rooms_are_refused(
    allow: bool, require: bool, encrypted_room: str | None, plain_room: str | None
) -> None:
    portal_rooms = rooms(allow=allow, require=require)
    assert await portal_rooms.encryption_refusal(ENCRYPTED) == encrypted_room
    assert await portal_rooms.encryption_refusal(PLAIN) == plain_room


@pytest.mark.parametrize(
    ("allow", "default", "require", "encrypted"),
    [
        (False, False, False, False),
        (True, False, False, False),
        (True, True, False, True),
        (True, False, True, True),
    ],
)
async def test_new_rooms_are_encrypted_with_default_or_require(
    allow: bool, default: bool, require: bool, encrypted: bool
) -> None:
    portal_rooms = rooms(allow=allow, default=default, require=require)
    await portal_rooms.create_room(Channel(id="05aa", displayname="Tom"))
    bot = portal_rooms._bot
    assert isinstance(bot, FakeBot)
    state = bot.created[0]["initial_state"]
    found = [s for s in state if s["type"] == "m.room.encryption"]
    expected = [
        {
            "type": "m.room.encryption",
            "state_key": "",
            "content": {"algorithm": "m.megolm.v1.aes-sha2"},
        }
    ]
    assert found == (expected if encrypted else [])

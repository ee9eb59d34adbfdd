"""The rooms mautrix's Olm machine counts as shared with a user (key sharing, rotation on
device changes): encrypted rooms where the user is joined or invited, not ones they left."""

from __future__ import annotations

from mautrix.types import Membership, RoomEncryptionStateEventContent, RoomID, UserID

from bridge.matrix.e2ee import SharedStateStore
from bridge.matrix.state_store import MemoryBridgeStateStore

USER = UserID("@a:x")


async def test_only_encrypted_rooms_the_user_is_in_are_shared() -> None:
    store = MemoryBridgeStateStore()
    megolm = RoomEncryptionStateEventContent.deserialize({"algorithm": "m.megolm.v1.aes-sha2"})
    rooms = {
        "!joined:x": (Membership.JOIN, True),
        "!invited:x": (Membership.INVITE, True),
        "!left:x": (Membership.LEAVE, True),
        "!banned:x": (Membership.BAN, True),
        "!plain:x": (Membership.JOIN, False),
    }
    for room, (membership, encrypted) in rooms.items():
        await store.set_membership(RoomID(room), USER, membership)
        if encrypted:
            await store.set_encryption_info(RoomID(room), megolm)
    shared = await SharedStateStore(store).find_shared_rooms(USER)
    assert sorted(shared) == ["!invited:x", "!joined:x"]

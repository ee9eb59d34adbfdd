"""``export contacts`` (docs/migration.md §4): a login's Session contacts and groups, from its
user config (docs/user-configs.md), with who has moved and their Matrix ID (the identity
map), as one JSON file and one text file uploaded to the person's management room.
:func:`contacts_document` and :func:`contacts_text` are pure."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from mautrix.appservice import IntentAPI
from mautrix.types import (
    ContentURI,
    EventType,
    FileInfo,
    MediaMessageEventContent,
    MessageType,
    RoomID,
)

from bridge.matrix.media import upload_file
from bridge.session.userconfig.views import Contact, JoinedGroup


def contacts_document(
    session_id: str,
    contacts: Mapping[str, Contact],
    groups: Iterable[JoinedGroup],
    owner_of: Callable[[str], str | None],
    now_ms: int,
) -> dict[str, Any]:
    people = []
    for sid, contact in sorted(contacts.items()):
        if contact.blocked:
            continue
        people.append(
            {
                "session_id": sid,
                "name": contact.nickname or contact.name or "",
                "matrix_id": owner_of(sid),
            }
        )
    moment = datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC)
    return {
        "session_id": session_id,
        "exported_at": moment.isoformat(timespec="seconds"),
        "contacts": people,
        "groups": [
            {"group_id": g.group_id, "name": g.name or ""}
            for g in groups
            if not g.invited and not g.removed
        ],
    }


def contacts_text(doc: Mapping[str, Any]) -> str:
    moved = [c for c in doc["contacts"] if c["matrix_id"]]
    lines = [
        f"Session contacts of {doc['session_id']} ({doc['exported_at']})",
        f"{len(moved)} of {len(doc['contacts'])} contacts are on Matrix.",
        "",
        "On Matrix:",
        *(f"  {c['name'] or c['session_id'][:10]}: {c['matrix_id']}" for c in moved),
        "",
        "Still only on Session:",
        *(
            f"  {c['name'] or '(no name)'}: {c['session_id']}"
            for c in doc["contacts"]
            if not c["matrix_id"]
        ),
        "",
        "Groups:",
        *(f"  {g['name'] or '(no name)'}: {g['group_id']}" for g in doc["groups"]),
    ]
    return "\n".join(lines) + "\n"


async def upload_contacts(bot: IntentAPI, room_id: str, doc: Mapping[str, Any]) -> None:
    stem = f"session-contacts-{doc['session_id'][:10]}-{doc['exported_at'][:10]}"
    files = [
        (f"{stem}.txt", "text/plain", contacts_text(doc)),
        (f"{stem}.json", "application/json", json.dumps(doc, ensure_ascii=False, indent=1)),
    ]
    for name, mime, text in files:
        data = text.encode()
        # Encrypted (only the ciphertext uploaded) when the room is (README, Encryption).
        uploaded = await upload_file(bot, room_id, data, mime_type=mime, filename=name)
        content = MediaMessageEventContent(
            msgtype=MessageType.FILE,
            body=name,
            url=ContentURI(uploaded.mxc),
            info=FileInfo(mimetype=mime, size=len(data)),
        )
        await bot.send_message_event(
            RoomID(room_id), EventType.ROOM_MESSAGE, cast(Any, uploaded.apply(content.serialize()))
        )

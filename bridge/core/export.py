"""``export`` (docs/migration.md §4): a portal's history as the bridge has seen it, as a JSON
archive (schema: docs/export.schema.json) and a self-contained HTML transcript, uploaded to
the room as two files.

The message table says who wrote which event when; the texts are read back from the room
(the bridge stores no message text). Authors are resolved through the identity map: a
Session ID linked or logged in shows its Matrix account too. :func:`build_archive` and
:func:`render_html` are pure; :class:`Exporter` does the reads and the uploads.
"""

from __future__ import annotations

import asyncio
import datetime
import html
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import (
    ContentURI,
    EventID,
    EventType,
    FileInfo,
    MediaMessageEventContent,
    MessageType,
    RoomID,
)

from bridge.db.records import MessageRecord, PortalRecord, ReactionRecord, now_ms
from bridge.db.repos.links import LinkRepo
from bridge.matrix.media import upload_file

log = logging.getLogger("bridge.core.export")

FORMAT = "session-matrix-bridge/export"
VERSION = 1
#: The newest messages an export holds at most.
MAX_MESSAGES = 20_000
#: Events read from the homeserver at a time.
READS_AT_ONCE = 8


@dataclass(frozen=True)
class EventText:
    """What the room says of one bridged event."""

    msgtype: str
    body: str | None
    file_name: str | None = None
    file_mxc: str | None = None


def iso(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _author_key(message: MessageRecord) -> str:
    return message.sender_mxid or message.sender_session_id or "unknown"


def build_archive(
    portal: PortalRecord,
    messages: list[MessageRecord],
    reactions: list[ReactionRecord],
    texts: Mapping[str, EventText],
    *,
    owners: Mapping[str, str],
    names: Mapping[str, str],
    exported_at: int,
) -> dict[str, Any]:
    """The JSON archive. ``owners`` maps Session IDs to their Matrix accounts (identity map),
    ``names`` authors to display names, ``texts`` event ids to their contents."""
    by_id: dict[int, list[dict[str, str]]] = {}
    authors: dict[str, dict[str, Any]] = {}

    def author(key: str) -> str:
        if key not in authors:
            is_mxid = key.startswith("@")
            session_id = None if is_mxid else key
            matrix_id = key if is_mxid else owners.get(key)
            authors[key] = {
                "key": key,
                "session_id": session_id,
                "matrix_id": matrix_id,
                "name": names.get(key) or key,
                "on_matrix": matrix_id is not None,
            }
        return key

    for reaction in reactions:
        entry = {"emoji": reaction.emoji, "author": author(reaction.sender)}
        by_id.setdefault(reaction.target_message_id, []).append(entry)
    items = []
    for message in messages:
        text = texts.get(message.mxid)
        items.append(
            {
                "event_id": message.mxid,
                "session_key": message.session_key,
                "part": message.part,
                "author": author(_author_key(message)),
                "timestamp": message.timestamp,
                "time": iso(message.timestamp),
                "edited": message.edit_count > 0,
                "type": text.msgtype if text else None,
                "body": text.body if text else None,
                "file": (
                    {"name": text.file_name, "mxc": text.file_mxc}
                    if text and text.file_mxc
                    else None
                ),
                "reactions": by_id.get(message.id, []),
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": iso(exported_at),
        "room": {
            "room_id": portal.mxid,
            "kind": portal.kind.value,
            "name": portal.name,
            "session_key": portal.session_key,
        },
        "authors": sorted(authors.values(), key=lambda a: str(a["key"])),
        "messages": items,
    }


_STYLE = (
    "body{font-family:sans-serif;max-width:50em;margin:auto;padding:1em;color:#222}"
    ".m{border-bottom:1px solid #ddd;padding:.4em 0}.who{font-weight:bold}"
    ".t{color:#777;font-size:.85em;margin-left:.5em}.body{white-space:pre-wrap}"
    ".r{color:#555;font-size:.85em}.f{font-style:italic}"
)


def render_html(archive: Mapping[str, Any]) -> str:
    """A transcript that opens in any browser: every text escaped, no script, no external
    resource (styles inline; files named, not linked)."""
    e = html.escape
    authors = {a["key"]: a for a in archive["authors"]}

    def who(key: str) -> str:
        found = authors.get(key, {"name": key, "matrix_id": None})
        moved = f" → {found['matrix_id']}" if found.get("matrix_id") not in (None, key) else ""
        return e(f"{found['name']}{moved}")

    room = archive["room"]
    title = e(room.get("name") or room.get("room_id") or "Session chat")
    rows = []
    for m in archive["messages"]:
        parts = [
            f'<div class="m"><span class="who">{who(m["author"])}</span>'
            f'<span class="t">{e(m["time"])}{" (edited)" if m["edited"] else ""}</span>'
        ]
        if m["body"] is not None:
            parts.append(f'<div class="body">{e(m["body"])}</div>')
        else:
            parts.append('<div class="body f">(not readable any more)</div>')
        if m["file"]:
            parts.append(f'<div class="f">File: {e(m["file"]["name"] or "")}</div>')
        if m["reactions"]:
            listed = ", ".join(f"{e(r['emoji'])} {who(r['author'])}" for r in m["reactions"])
            parts.append(f'<div class="r">{listed}</div>')
        rows.append("".join(parts) + "</div>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>Exported {e(archive['exported_at'])} by the Session bridge: "
        f"{len(archive['messages'])} messages.</p>{''.join(rows)}</body></html>\n"
    )


def event_text(content: Mapping[str, Any]) -> EventText:
    """The parts of an event's content an export keeps."""
    msgtype = str(content.get("msgtype") or "")
    body = content.get("body")
    url = content.get("url")
    is_file = isinstance(url, str) and msgtype != str(MessageType.TEXT)
    return EventText(
        msgtype=msgtype,
        body=body if isinstance(body, str) else None,
        file_name=(content.get("filename") or body) if is_file else None,
        file_mxc=url if is_file else None,
    )


GhostNames = Callable[[list[str]], Awaitable[dict[str, str]]]
"""Display names of Session IDs (their ghosts'), keyed by id."""
Owners = Callable[[list[str], bytes | None], dict[str, str]]
"""The Matrix owners of Session IDs, blinded ones too (``OwnSessionIds.owners``)."""


class Exporter:
    """Reads a portal's history and uploads the two files to its room."""

    def __init__(
        self,
        *,
        links: LinkRepo,
        bot: IntentAPI,
        ghost_names: GhostNames,
        owners: Owners,
        server_key_of: Callable[[PortalRecord], bytes | None],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._links = links
        self._owners = owners
        self._server_key_of = server_key_of
        self._bot = bot
        self._ghost_names = ghost_names
        self._clock = clock

    async def archive(self, portal: PortalRecord) -> dict[str, Any]:
        messages, reactions = await self._links.history(portal.id, MAX_MESSAGES)
        texts = await self._texts(str(portal.mxid), [m.mxid for m in messages])
        session_ids = sorted(
            {m.sender_session_id for m in messages if m.sender_session_id}
            | {r.sender for r in reactions if not r.sender.startswith("@")}
        )
        owners = {
            r.session_id: r.mxid for r in await self._links.identities(session_ids=session_ids)
        }
        # Blinded ids (communities) of logins and links are known only with the server's key.
        owners.update(self._owners(session_ids, self._server_key_of(portal)))
        names = await self._ghost_names(session_ids)
        return build_archive(
            portal,
            messages,
            reactions,
            texts,
            owners=owners,
            names=names,
            exported_at=self._clock(),
        )

    async def upload(self, portal: PortalRecord, archive: Mapping[str, Any]) -> None:
        """Send the archive (JSON) and the transcript (HTML) to the room as files."""
        stem = f"session-export-{archive['exported_at'][:10]}"
        files = [
            (
                f"{stem}.json",
                "application/json",
                json.dumps(archive, ensure_ascii=False, indent=1),
            ),
            (f"{stem}.html", "text/html", render_html(archive)),
        ]
        room = RoomID(str(portal.mxid))
        for name, mime, text in files:
            data = text.encode()
            # Encrypted (only the ciphertext uploaded) when the room is (README, Encryption).
            uploaded = await upload_file(self._bot, room, data, mime_type=mime, filename=name)
            content = MediaMessageEventContent(
                msgtype=MessageType.FILE,
                body=name,
                url=ContentURI(uploaded.mxc),
                info=FileInfo(mimetype=mime, size=len(data)),
            )
            await self._bot.send_message_event(
                room, EventType.ROOM_MESSAGE, cast(Any, uploaded.apply(content.serialize()))
            )

    async def _texts(self, room_id: str, event_ids: list[str]) -> dict[str, EventText]:
        gate = asyncio.Semaphore(READS_AT_ONCE)
        texts: dict[str, EventText] = {}

        async def one(event_id: str) -> None:
            async with gate:
                try:
                    event = await self._bot.get_event(RoomID(room_id), EventID(event_id))
                except MatrixError as e:  # redacted, or out of the bot's sight
                    log.debug("Export: cannot read %s: %s", event_id, e)
                    return
            content = event.content.serialize() if hasattr(event.content, "serialize") else {}
            texts[event_id] = event_text(content)

        await asyncio.gather(*(one(event_id) for event_id in event_ids))
        return texts

"""Async client of one community server (docs/session-protocol.md §5).

One :class:`CommunityClient` per (Session identity, server). It keeps the set of joined rooms
and polls all of them with **one** ``/batch`` request per :meth:`~CommunityClient.poll`
(:mod:`bridge.session.sogs.poll`). Cursors come from a :class:`CursorStore` and move only
when the caller calls :meth:`~CommunityClient.commit` after storing what it got.

Posts are ``base64(pad(Content))`` signed with the blind15 key (§5.6); blinded DMs use the
``/inbox`` (§5.10). Errors are :mod:`bridge.session.sogs.errors` subclasses.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from bridge.ids import BlindedID
from bridge.session.blinding import blind15_id
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.keys import Identity
from bridge.session.messages import Message, content_to_proto
from bridge.session.padding import pad_message
from bridge.session.sogs.cursors import (
    INBOX,
    OUTBOX,
    CursorStore,
    MemoryCursorStore,
    room_stream,
)
from bridge.session.sogs.decode import (
    decode_message,
    decode_room,
    field,
    int_field,
    number_field,
)
from bridge.session.sogs.errors import InvalidCommunityReply
from bridge.session.sogs.inbox import encrypt_for_blinded_recipient
from bridge.session.sogs.models import (
    CommunityMessage,
    FileUpload,
    InboxSent,
    PollResult,
    PostedMessage,
    ReactionResult,
    ReactionUpdate,
    RoomInfo,
)
from bridge.session.sogs.poll import PollCursors, build_poll, parse_poll, room_reply
from bridge.session.sogs.posts import sign_post
from bridge.session.sogs.transport import SogsTransport
from bridge.session.sogs.urls import CommunityServerRef, parse_community_url, valid_room_token

__all__ = ["CommunityClient"]

log = logging.getLogger("bridge.session.sogs.client")

#: Rooms joined per ``/batch`` by :meth:`CommunityClient.join_many`.
JOIN_BATCH = 100


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _room(token: str) -> str:
    if not valid_room_token(token):
        raise InvalidInput(f"invalid room token {token!r} (§5.1: [0-9a-zA-Z_-]{{1,64}})")
    return token


class CommunityClient:
    """A Session identity's client for one community server."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        identity: Identity,
        server: CommunityServerRef,
        *,
        cursors: CursorStore | None = None,
        reactors: int = 20,
        timeout: float = 20.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.identity = identity
        self.cursors: CursorStore = cursors if cursors is not None else MemoryCursorStore()
        self.reactors = reactors
        self._clock = clock
        self._http = SogsTransport(session, identity, server, timeout=timeout, clock=clock)
        self._joined: dict[str, None] = {}  # insertion-ordered set
        self._info_updates: dict[str, int] = {}
        self.blinded_id: BlindedID = blind15_id(identity, server.pubkey)

    @classmethod
    def from_url(
        cls, session: aiohttp.ClientSession, identity: Identity, url: str, **kwargs: Any
    ) -> tuple[CommunityClient, str]:
        """A client for the server of a community URL, and the URL's room token (§5.1)."""
        parsed = parse_community_url(url)
        return cls(session, identity, parsed.server, **kwargs), parsed.room

    @property
    def joined(self) -> tuple[str, ...]:
        """Tokens of the rooms that :meth:`poll` covers."""
        return tuple(self._joined)

    # --- server and rooms (§5.3, §5.4) ---------------------------------------------------

    async def capabilities(self) -> list[str]:
        """The server's capabilities, e.g. ``["blind", "reactions", "sogs"]``."""
        reply = await self._http.call("GET", "/capabilities")
        caps = field(reply.json(), "capabilities", list, "capabilities")
        if not all(isinstance(c, str) for c in caps):
            raise InvalidCommunityReply("capabilities must be strings")
        return list(caps)

    async def rooms(self) -> list[RoomInfo]:
        """The rooms we can see."""
        body = (await self._http.call("GET", "/rooms")).json()
        if not isinstance(body, list):
            raise InvalidCommunityReply("/rooms is not a list")
        return [decode_room(obj) for obj in body]

    async def room(self, token: str) -> RoomInfo:
        """One room; :class:`RoomNotFound` if the server has no such room."""
        reply = await self._http.call("GET", f"/room/{_room(token)}", room=token)
        return decode_room(reply.json())

    async def join(self, token: str) -> RoomInfo:
        """Check that the room exists and add it to the rooms :meth:`poll` covers."""
        info = await self.room(token)
        self._joined[token] = None
        self._info_updates[token] = info.info_updates
        return info

    async def join_many(self, tokens: Sequence[str]) -> dict[str, RoomInfo | SessionError]:
        """Join several rooms with one ``/batch`` per :data:`JOIN_BATCH` rooms (§5.9): each
        token's room info, or the error its room got (e.g. :class:`RoomNotFound`), which
        leaves that room unjoined. Raises when the server cannot be asked at all."""
        outcomes: dict[str, RoomInfo | SessionError] = {}
        valid: list[str] = []
        for token in tokens:
            try:
                valid.append(_room(token))
            except InvalidInput as e:
                outcomes[token] = e
        for start in range(0, len(valid), JOIN_BATCH):
            chunk = valid[start : start + JOIN_BATCH]
            subrequests = [{"method": "GET", "path": f"/room/{token}"} for token in chunk]
            reply = (await self._http.call("POST", "/batch", json_body=subrequests)).json()
            if not isinstance(reply, list) or len(reply) != len(chunk):
                raise InvalidCommunityReply("batch reply does not have one result per room")
            for token, result in zip(chunk, reply, strict=True):
                try:
                    info = room_reply(token, result)
                except SessionError as e:
                    outcomes[token] = e
                    continue
                self._joined[token] = None
                self._info_updates[token] = info.info_updates
                outcomes[token] = info
        return outcomes

    def leave(self, token: str) -> None:
        """Stop polling a room (its cursor stays in the store)."""
        self._joined.pop(token, None)

    # --- polling (§5.5, §5.9, §5.10) -------------------------------------------------------

    async def _poll_cursors(self, rooms: Sequence[str]) -> PollCursors:
        key = self.server.base_url
        seqnos = {t: await self.cursors.get(key, room_stream(t)) for t in rooms}
        inbox_id = await self.cursors.get(key, INBOX)
        outbox_id = await self.cursors.get(key, OUTBOX)
        return PollCursors(seqnos, dict(self._info_updates), inbox_id, outbox_id)

    async def poll(self) -> PollResult:
        """Fetch everything new in every joined room plus the inbox, in ONE request.

        Cursors are not moved: call :meth:`commit` with the result once it is handled.
        """
        rooms = self.joined
        cursors = await self._poll_cursors(rooms)
        subrequests = build_poll(rooms, cursors, self.reactors)
        reply = await self._http.call("POST", "/batch", json_body=subrequests)
        result = parse_poll(self.identity, self.server, rooms, cursors, reply.json())
        for token, update in result.rooms.items():
            if update.info is not None and update.info.details is not None:
                self._info_updates[token] = update.info.details.info_updates
        return result

    async def commit(self, result: PollResult) -> None:
        """Advance every cursor of ``result`` (call after the items are durably handled)."""
        for token, update in result.rooms.items():
            await self.commit_room(token, update.seqno)
        await self._advance(INBOX, result.inbox_id)
        await self._advance(OUTBOX, result.outbox_id)

    async def commit_boxes(self, inbox_id: int, outbox_id: int) -> None:
        """Advance the inbox and outbox cursors (after their items are durably handled)."""
        await self._advance(INBOX, inbox_id)
        await self._advance(OUTBOX, outbox_id)

    async def commit_room(self, token: str, seqno: int) -> None:
        """Advance one room's cursor to ``seqno`` (never backwards)."""
        await self._advance(room_stream(token), seqno)

    async def _advance(self, stream: str, value: int) -> None:
        key = self.server.base_url
        if value > await self.cursors.get(key, stream):
            await self.cursors.set(key, stream, value)

    async def recent(self, token: str, limit: int = 25) -> list[CommunityMessage]:
        """The newest live messages of a room, newest first (not a cursor operation)."""
        path = f"/room/{_room(token)}/messages/recent?limit={int(limit)}"
        body = (await self._http.call("GET", path, room=token)).json()
        if not isinstance(body, list):
            raise InvalidCommunityReply("messages/recent is not a list")
        decoded = [decode_message(token, obj) for obj in body]
        return [m for m in decoded if not isinstance(m, ReactionUpdate)]

    async def message(self, token: str, message_id: int) -> CommunityMessage:
        """One live message of a room, as a poll brings it (``GET /room/{room}/message/{id}``,
        §5.5); :class:`~bridge.session.sogs.errors.CommunityNotFound` once it is deleted."""
        path = f"/room/{_room(token)}/message/{int(message_id)}"
        body = (await self._http.call("GET", path, room=token)).json()
        decoded = decode_message(token, body)
        if isinstance(decoded, ReactionUpdate):  # a message object always has its data
            raise InvalidCommunityReply(f"message {message_id} came back without its data")
        return decoded

    # --- posting (§5.6) --------------------------------------------------------------------

    def _signed_body(self, message: Message, files: Sequence[int]) -> dict[str, Any]:
        if message.sig_timestamp is None:  # §2.11: sigTimestamp = our sent timestamp
            message = dataclasses.replace(message, sig_timestamp=int(self._clock() * 1000))
        data = pad_message(content_to_proto(message))
        signature = sign_post(self.identity, self.server.pubkey, data)
        return {"data": _b64(data), "signature": _b64(signature), "files": list(files)}

    async def post(
        self,
        token: str,
        message: Message,
        *,
        files: Sequence[int] = (),
        whisper_to: str | None = None,
        whisper_mods: bool = False,
    ) -> PostedMessage:
        """Post a message; ``files`` are ids from :meth:`upload` referenced by it. A
        moderator may make it a whisper: seen only by ``whisper_to`` and/or the moderators."""
        body = self._signed_body(message, files)
        if whisper_to is not None:
            body["whisper_to"] = whisper_to
        if whisper_mods:
            body["whisper_mods"] = True
        path = f"/room/{_room(token)}/message"
        obj = (await self._http.call("POST", path, room=token, json_body=body)).json()
        where = "posted message"
        seqno = int_field(obj, "seqno", where)
        return PostedMessage(
            int_field(obj, "id", where), seqno, number_field(obj, "posted", where)
        )

    async def edit(
        self, token: str, message_id: int, message: Message, *, files: Sequence[int] = ()
    ) -> None:
        """Replace the content of our own message (§5.6)."""
        body = self._signed_body(message, files)
        path = f"/room/{_room(token)}/message/{int(message_id)}"
        await self._http.call("PUT", path, json_body=body)

    async def delete(self, token: str, message_id: int) -> None:
        """Delete our own message (§5.6)."""
        await self._http.call("DELETE", f"/room/{_room(token)}/message/{int(message_id)}")

    # --- reactions (§5.7) ------------------------------------------------------------------

    async def react(self, token: str, message_id: int, emoji: str) -> ReactionResult:
        """Add our reaction; ``changed`` is False if it was already there."""
        return await self._reaction("PUT", token, message_id, emoji, "added")

    async def unreact(self, token: str, message_id: int, emoji: str) -> ReactionResult:
        """Remove our reaction; ``changed`` is False if it was not there."""
        return await self._reaction("DELETE", token, message_id, emoji, "removed")

    async def _reaction(
        self, method: str, token: str, message_id: int, emoji: str, key: str
    ) -> ReactionResult:
        if not 1 <= len(emoji) <= 12 or "/" in emoji:
            raise InvalidInput("a community reaction is 1 to 12 code points, without '/'")
        # The path is signed as text and sent percent-encoded (§5.2).
        path = f"/room/{_room(token)}/reaction/{int(message_id)}/{emoji}"
        body: dict[str, Any] | None = {} if method == "PUT" else None
        obj = (await self._http.call(method, path, json_body=body)).json()
        changed = field(obj, key, bool, "reaction reply")
        return ReactionResult(bool(changed), int_field(obj, "seqno", "reaction reply"))

    # --- files (§5.8) ----------------------------------------------------------------------

    def file_url(self, token: str, file_id: int) -> str:
        """``{server}/room/{room}/file/{id}``: the ``AttachmentPointer.url`` (§5.8)."""
        return f"{self.server.base_url}/room/{_room(token)}/file/{int(file_id)}"

    async def upload(self, token: str, data: bytes, filename: str | None = None) -> FileUpload:
        """Upload raw bytes (community files are neither encrypted nor padded, §5.8)."""
        headers = {"Content-Type": "application/octet-stream"}
        if filename:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        path = f"/room/{_room(token)}/file"
        obj = (await self._http.call("POST", path, body=data, headers=headers)).json()
        file_id = int_field(obj, "id", "upload reply")
        return FileUpload(file_id, self.file_url(token, file_id))

    async def download(self, token: str, file_id: int) -> bytes:
        """A room file's bytes."""
        path = f"/room/{_room(token)}/file/{int(file_id)}"
        return (await self._http.call("GET", path)).body

    # --- blinded DMs (§5.10) ---------------------------------------------------------------

    async def send_inbox(self, recipient: BlindedID, message: Message) -> InboxSent:
        """Send a message request to a blinded id on this server."""
        if message.sig_timestamp is None:
            message = dataclasses.replace(message, sig_timestamp=int(self._clock() * 1000))
        plaintext = pad_message(content_to_proto(message))
        payload = encrypt_for_blinded_recipient(
            self.identity, self.server.pubkey, recipient, plaintext
        )
        path = f"/inbox/{recipient.value}"
        obj = (await self._http.call("POST", path, json_body={"message": _b64(payload)})).json()
        where = "inbox reply"
        return InboxSent(int_field(obj, "id", where), number_field(obj, "posted_at", where))

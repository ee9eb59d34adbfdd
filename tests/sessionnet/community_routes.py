"""Endpoints of the devnet community server, independent of aiohttp (docs/session-protocol.md §5).

:class:`Routes` maps an already-authenticated :class:`Call` to a :class:`Reply`. The aiohttp
app (:mod:`tests.sessionnet.community`) and ``/batch``/``/sequence`` subrequests (§5.9) both
go through :meth:`Routes.dispatch`, so a subrequest behaves exactly like a direct request.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from bridge.ids import BlindedID, InvalidId, SessionID, parse_any_id
from bridge.session.errors import SessionError
from bridge.session.sogs.posts import verify_post
from tests.sessionnet.community_state import (
    CommunityState,
    HttpError,
    Post,
    Room,
    message_json,
    reactions_json,
)

MAX_UPLOAD = 10_000_000  # pysogs default upload limit (10 MB)
_FILENAME = re.compile(r"filename\*=UTF-8''([^;]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Call:
    """One request after authentication: ``path`` is percent-decoded and has no query."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    user: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON, else 400."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "body is not JSON") from exc

    def need_user(self) -> str:
        """The authenticated user; anonymous requests get 401."""
        if self.user is None:
            raise HttpError(401, "X-SOGS-* request authentication required")
        return self.user

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query parameter, clamped to ``[low, high]`` like pysogs does."""
        try:
            value = int(self.query.get(name, default))
        except ValueError as exc:
            raise HttpError(400, f"invalid {name}") from exc
        return min(max(value, low), high)


@dataclass
class Reply:
    """A JSON (``body``) or raw-bytes (``raw``) reply."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call, re.Match[str]], Reply]
_ROOM = r"/room/(?P<room>[0-9A-Za-z_-]{1,64})"


def _b64field(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise HttpError(400, f"{what} must be base64 text")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HttpError(400, f"{what} is not base64") from exc


def _whisper(body: dict[str, Any], moderator: bool) -> tuple[str | None, bool]:
    """A post's ``whisper_to`` (a Session id) and ``whisper_mods``; only moderators may set
    them (pysogs answers 403 otherwise, §5.6)."""
    to, mods = body.get("whisper_to"), body.get("whisper_mods", False)
    if to is not None and (not isinstance(to, str) or not to):
        raise HttpError(400, "whisper_to must be a Session ID")
    if not isinstance(mods, bool):
        raise HttpError(400, "whisper_mods must be a boolean")
    if (to or mods) and not moderator:
        raise HttpError(403, "only moderators may whisper")
    return to, mods


def _author(user: str) -> SessionID | BlindedID:
    author = parse_any_id(user)
    assert isinstance(author, SessionID | BlindedID)
    return author


class Routes:
    """The §5 endpoints over a :class:`CommunityState`."""

    def __init__(self, state: CommunityState, capabilities: list[str], reactors_max: int = 20):
        self.state = state
        self.capabilities = sorted(capabilities)
        self.reactors_max = reactors_max
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/capabilities", self.get_capabilities),
            ("GET", "/rooms", self.get_rooms),
            ("GET", _ROOM, self.get_room),
            ("GET", _ROOM + r"/pollInfo/(?P<n>\d+)", self.poll_info),
            ("GET", _ROOM + r"/messages/since/(?P<n>\d+)", self.since),
            ("GET", _ROOM + r"/messages/recent", self.recent),
            ("GET", _ROOM + r"/message/(?P<id>\d+)", self.get_message),
            ("POST", _ROOM + r"/message", self.post_message),
            ("PUT", _ROOM + r"/message/(?P<id>\d+)", self.edit_message),
            ("DELETE", _ROOM + r"/message/(?P<id>\d+)", self.delete_message),
            ("PUT", _ROOM + r"/reaction/(?P<id>\d+)/(?P<emoji>[^/]+)", self.add_reaction),
            ("DELETE", _ROOM + r"/reaction/(?P<id>\d+)/(?P<emoji>[^/]+)", self.del_reaction),
            ("POST", _ROOM + r"/file", self.upload),
            ("GET", _ROOM + r"/file/(?P<id>\d+)(?:/[^/]*)?", self.download),
            ("GET", r"/inbox", self.get_inbox),
            ("GET", r"/inbox/since/(?P<n>\d+)", self.get_inbox),
            ("DELETE", r"/inbox", self.clear_inbox),
            ("POST", r"/inbox/(?P<to>[0-9a-fA-F]{66})", self.send_inbox),
            ("GET", r"/outbox", self.get_outbox),
            ("GET", r"/outbox/since/(?P<n>\d+)", self.get_outbox),
        ]
        self._table = [(m, re.compile(p), h) for m, p, h in table]

    def dispatch(self, call: Call) -> Reply:
        """Route ``call``; unknown paths are 404, known paths with another method 405."""
        matched_path = False
        for method, pattern, handler in self._table:
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            matched_path = True
            if method == call.method:
                return handler(call, match)
        raise HttpError(405 if matched_path else 404, f"no route for {call.method} {call.path}")

    # --- general / rooms (§5.3, §5.4) -------------------------------------------------------

    def get_capabilities(self, call: Call, _m: re.Match[str]) -> Reply:
        """``/capabilities[?required=a,b]`` → 412 with ``missing`` when one is absent."""
        body: dict[str, Any] = {"capabilities": self.capabilities}
        required = [c for c in call.query.get("required", "").split(",") if c]
        missing = [c for c in required if c not in self.capabilities]
        if missing:
            return Reply(412, {**body, "missing": missing})
        return Reply(body=body)

    def _room(self, call: Call, match: re.Match[str]) -> Room:
        room = self.state.room(match["room"])
        if call.user is not None:
            self.state.touch(call.user, room)
        return room

    def room_json(self, room: Room) -> dict[str, Any]:
        """The full room object of ``GET /room/{room}`` (§5.4); everyone may read/write."""
        now = self.state.clock()
        out: dict[str, Any] = {
            "token": room.token,
            "name": room.name,
            "description": room.description,
            "info_updates": room.info_updates,
            "message_sequence": room.sequence,
            "created": room.created,
            "active_users": room.active_users(now),
            "active_users_cutoff": 7 * 86400,
            "pinned_messages": [],
            "moderators": [],
            "admins": [],
            **self._permissions(),
        }
        if room.image_id is not None:
            out["image_id"] = room.image_id
        return out

    @staticmethod
    def _permissions() -> dict[str, bool]:
        return {"read": True, "write": True, "upload": True, "moderator": False, "admin": False}

    def get_rooms(self, call: Call, _m: re.Match[str]) -> Reply:
        """All rooms."""
        return Reply(body=[self.room_json(room) for room in self.state.rooms.values()])

    def get_room(self, call: Call, match: re.Match[str]) -> Reply:
        """One room."""
        return Reply(body=self.room_json(self._room(call, match)))

    def poll_info(self, call: Call, match: re.Match[str]) -> Reply:
        """Small room info; ``details`` only when ``info_updates`` changed (§5.4)."""
        room = self._room(call, match)
        out: dict[str, Any] = {
            "token": room.token,
            "active_users": room.active_users(self.state.clock()),
            **self._permissions(),
        }
        if int(match["n"]) != room.info_updates:
            out["details"] = self.room_json(room)
        return Reply(body=out)

    # --- reading (§5.5) ---------------------------------------------------------------------

    def since(self, call: Call, match: re.Match[str]) -> Reply:
        """The polling endpoint; with ``t=r`` reaction-only changes come as small items."""
        room = self._room(call, match)
        limit = call.int_param("limit", 100, 1, 256)
        with_reactions = "r" in call.query.get("t", "")
        reactors = call.int_param("reactors", 4, 0, self.reactors_max) if with_reactions else 0
        seqno = int(match["n"])
        items: list[dict[str, Any]] = []
        for post in self.state.since(room, seqno, limit, with_reactions, call.user):
            if post.seqno_data > seqno:
                items.append(message_json(post, call.user, reactors))
            else:
                reactions = reactions_json(post, call.user, reactors)
                items.append({"id": post.id, "seqno": post.seqno, "reactions": reactions})
        return Reply(body=items)

    def recent(self, call: Call, match: re.Match[str]) -> Reply:
        """Newest live posts first."""
        room = self._room(call, match)
        limit = call.int_param("limit", 100, 1, 256)
        live = [
            p for p in room.posts.values() if p.data is not None and room.visible(p, call.user)
        ]
        newest = sorted(live, key=lambda p: p.id, reverse=True)[:limit]
        return Reply(body=[message_json(p, call.user) for p in newest])

    def get_message(self, call: Call, match: re.Match[str]) -> Reply:
        """One live post (deleted ones are 404)."""
        room = self._room(call, match)
        return Reply(body=message_json(room.live_post(int(match["id"]), call.user), call.user))

    # --- posting (§5.6) ---------------------------------------------------------------------

    def _signed_body(self, call: Call, author: str) -> tuple[bytes, bytes, list[int]]:
        body = call.json()
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        data = _b64field(body.get("data"), "data")
        signature = _b64field(body.get("signature"), "signature")
        files = body.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, int) for f in files):
            raise HttpError(400, "files must be a list of file ids")
        try:
            verify_post(_author(author), data, signature)
        except SessionError as exc:  # signature made with another key, or not 64 bytes
            raise HttpError(400, "message signature failed to validate") from exc
        return data, signature, files

    def post_message(self, call: Call, match: re.Match[str]) -> Reply:
        """New post → 201 with the stored message object; moderators may whisper."""
        user = call.need_user()
        room = self._room(call, match)
        data, signature, files = self._signed_body(call, user)
        whisper_to, whisper_mods = _whisper(call.json(), user in room.moderators)
        post = self.state.add_post(
            room, user, data, signature, whisper_to=whisper_to, whisper_mods=whisper_mods
        )
        self.state.keep_files(room, files)
        return Reply(201, message_json(post, user))

    def _own_post(self, call: Call, match: re.Match[str]) -> tuple[str, Room, Post]:
        user = call.need_user()
        room = self._room(call, match)
        post = room.live_post(int(match["id"]))
        if post.session_id != user:  # author only; this devnet has no moderators
            raise HttpError(403, "only the author may change this message")
        return user, room, post

    def edit_message(self, call: Call, match: re.Match[str]) -> Reply:
        """Replace a post's data and signature (author only) → ``{}``."""
        user, room, post = self._own_post(call, match)
        data, signature, files = self._signed_body(call, user)
        self.state.edit_post(room, post, data, signature)
        self.state.keep_files(room, files)
        return Reply(body={})

    def delete_message(self, call: Call, match: re.Match[str]) -> Reply:
        """Delete a post (author only) → ``{}``."""
        _user, room, post = self._own_post(call, match)
        self.state.delete_post(room, post)
        return Reply(body={})

    # --- reactions (§5.7) -------------------------------------------------------------------

    def _reaction(self, call: Call, match: re.Match[str], add: bool) -> Reply:
        user = call.need_user()
        room = self._room(call, match)
        post = room.live_post(int(match["id"]))
        emoji = match["emoji"]  # paths arrive percent-decoded
        if not 1 <= len(emoji) <= 12:
            raise HttpError(400, "a reaction is 1 to 12 code points")
        changed = self.state.react(room, post, user, emoji, add)
        return Reply(body={"added" if add else "removed": changed, "seqno": post.seqno})

    def add_reaction(self, call: Call, match: re.Match[str]) -> Reply:
        """``PUT …/reaction/{id}/{emoji}`` → ``{added, seqno}``."""
        return self._reaction(call, match, True)

    def del_reaction(self, call: Call, match: re.Match[str]) -> Reply:
        """``DELETE …/reaction/{id}/{emoji}`` → ``{removed, seqno}``."""
        return self._reaction(call, match, False)

    # --- files (§5.8) -----------------------------------------------------------------------

    def upload(self, call: Call, match: re.Match[str]) -> Reply:
        """Raw upload → 201 ``{"id": n}``; over 10 MB is 413."""
        call.need_user()
        room = self._room(call, match)
        if not call.body:
            raise HttpError(400, "empty upload")
        if len(call.body) > MAX_UPLOAD:
            raise HttpError(413, "file too large")
        found = _FILENAME.search(call.headers.get("content-disposition", ""))
        filename = unquote(found.group(1)) if found else None
        stored = self.state.add_file(room, call.body, filename)
        return Reply(201, {"id": stored.id})

    def download(self, call: Call, match: re.Match[str]) -> Reply:
        """Raw bytes of a room file."""
        room = self._room(call, match)
        stored = self.state.get_file(room, int(match["id"]))
        headers = {"Content-Type": "application/octet-stream"}
        if stored.filename:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{stored.filename}"
        return Reply(raw=stored.data, headers=headers)

    # --- blinded DMs (§5.10) ----------------------------------------------------------------

    @staticmethod
    def _blinded_user(call: Call) -> str:
        user = call.need_user()
        if not user.startswith("15"):
            raise HttpError(401, "this endpoint requires blinded authentication")
        return user

    def _box(self, call: Call, match: re.Match[str], outgoing: bool) -> Reply:
        user = self._blinded_user(call)
        since = "n" in match.groupdict() and match["n"] is not None
        # pysogs: oldest first, at most ``limit`` (default 100, clamped to 1..256) items.
        limit = call.int_param("limit", 100, 1, 256)
        after = int(match["n"]) if since else 0
        items = self.state.box(user, outgoing=outgoing, after=after)[:limit]
        if since and not items:
            return Reply(304)  # "since" with nothing new is 304 Not Modified
        return Reply(body=[item.as_json() for item in items])

    def get_inbox(self, call: Call, match: re.Match[str]) -> Reply:
        """``/inbox`` or ``/inbox/since/{id}``."""
        return self._box(call, match, outgoing=False)

    def get_outbox(self, call: Call, match: re.Match[str]) -> Reply:
        """``/outbox`` or ``/outbox/since/{id}``."""
        return self._box(call, match, outgoing=True)

    def clear_inbox(self, call: Call, _m: re.Match[str]) -> Reply:
        """``DELETE /inbox`` → ``{"deleted": n}``."""
        return Reply(body={"deleted": self.state.clear_inbox(self._blinded_user(call))})

    def send_inbox(self, call: Call, match: re.Match[str]) -> Reply:
        """``POST /inbox/{15…}`` with ``{"message": b64}`` → 201."""
        user = self._blinded_user(call)
        try:
            recipient = BlindedID(match["to"])
        except InvalidId as exc:
            raise HttpError(404, "recipient must be a blinded id") from exc
        body = call.json()
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        message = _b64field(body.get("message"), "message")
        item = self.state.add_inbox(user, recipient.value, message)
        reply = item.as_json()
        del reply["message"]
        return Reply(201, reply)

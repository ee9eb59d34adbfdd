"""In-memory state of the devnet community server (docs/session-protocol.md §5.4-§5.10).

Plain data and the rules that change it: the room event counter (``seqno``), edits and
deletions that bump a post's ``seqno`` so it is served again by ``messages/since`` (§5.5),
reactions that bump it too (§5.7), uploaded files with their expiry (§5.8), and the blinded
inbox (§5.10). The HTTP layer is :mod:`tests.sessionnet.community`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UNREFERENCED_FILE_TTL = 3600.0  # unreferenced uploads expire after 1 h (§5.8)
POSTED_FILE_TTL = 15 * 86400.0  # referenced by a post: 15 days (§5.8)
INBOX_TTL = 15 * 86400.0
ACTIVE_CUTOFF = 7 * 86400  # pysogs default "active users" window


class HttpError(Exception):
    """A refusal with its HTTP status, turned into a plain-text reply by the HTTP layer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class RoomSpec:
    """A room configured at server start: token, name, description and optional image bytes."""

    token: str
    name: str
    description: str = ""
    image: bytes | None = None


@dataclass
class StoredFile:
    """An uploaded room file (§5.8)."""

    id: int
    data: bytes
    filename: str | None
    uploaded: float
    expires: float | None


@dataclass
class Post:
    """A room message with the counters of §5.5: ``seqno`` moves on every change."""

    id: int
    session_id: str
    posted: float
    seqno: int
    seqno_data: int  # last creation/edit/deletion
    data: bytes | None
    signature: bytes | None
    edited: float | None = None
    # emoji -> {reactor session id: time}; dict order gives each emoji's ``index``
    reactions: dict[str, dict[str, float]] = field(default_factory=dict)
    # a whisper (moderators only may post one): for this user and/or the moderators (§5.5)
    whisper_to: str | None = None
    whisper_mods: bool = False

    @property
    def whisper(self) -> bool:
        return self.whisper_to is not None or self.whisper_mods


@dataclass
class InboxItem:
    """A blinded DM held by the server (§5.10)."""

    id: int
    posted_at: float
    expires_at: float
    sender: str
    recipient: str
    message: bytes

    def as_json(self) -> dict[str, Any]:
        """The item as served by ``/inbox`` and ``/outbox``."""
        return {
            "id": self.id,
            "posted_at": self.posted_at,
            "expires_at": self.expires_at,
            "sender": self.sender,
            "recipient": self.recipient,
            "message": b64(self.message),
        }


@dataclass
class Room:
    """One room: its info, its event counter, posts and files."""

    token: str
    name: str
    description: str
    created: float
    image_id: int | None = None
    info_updates: int = 0
    sequence: int = 0
    posts: dict[int, Post] = field(default_factory=dict)
    files: dict[int, StoredFile] = field(default_factory=dict)
    active: dict[str, float] = field(default_factory=dict)
    moderators: set[str] = field(default_factory=set)  # session ids as they authenticate

    def next_seqno(self) -> int:
        """Bump the room's event counter (``message_sequence``) and return the new value."""
        self.sequence += 1
        return self.sequence

    def active_users(self, now: float) -> int:
        """Users seen within the active window."""
        return sum(1 for seen in self.active.values() if now - seen <= ACTIVE_CUTOFF)

    def live_post(self, message_id: int, viewer: str | None = None) -> Post:
        """A post that exists, is not deleted and that ``viewer`` may see, else 404."""
        post = self.posts.get(message_id)
        if post is None or post.data is None or not self.visible(post, viewer):
            raise HttpError(404, "message not found")
        return post

    def visible(self, post: Post, viewer: str | None) -> bool:
        """pysogs' whisper rule (``sogs/model/room.py``): everyone sees public posts; a
        moderator also sees whispers to the moderators, to themselves and their own; anyone
        else only whispers to themselves."""
        if not post.whisper:
            return True
        if viewer is not None and viewer in self.moderators:
            return post.whisper_mods or viewer in (post.whisper_to, post.session_id)
        return viewer is not None and post.whisper_to == viewer


def reactions_json(post: Post, viewer: str | None, reactors: int) -> dict[str, Any]:
    """``{emoji: {index, count, reactors, you}}`` (§5.5); ``reactors`` caps the list."""
    out: dict[str, Any] = {}
    for index, (emoji, who) in enumerate(post.reactions.items()):
        entry: dict[str, Any] = {"index": index, "count": len(who)}
        if reactors > 0:
            entry["reactors"] = list(who)[:reactors]
        if viewer is not None and viewer in who:
            entry["you"] = True
        out[emoji] = entry
    return out


def message_json(post: Post, viewer: str | None, reactors: int = 0) -> dict[str, Any]:
    """A full message object (§5.5); deleted posts have ``data: null`` and ``deleted``."""
    out: dict[str, Any] = {
        "id": post.id,
        "session_id": post.session_id,
        "posted": post.posted,
        "seqno": post.seqno,
        "reactions": reactions_json(post, viewer, reactors),
    }
    if post.edited is not None:
        out["edited"] = post.edited
    if post.whisper:
        out["whisper"] = True
        out["whisper_mods"] = post.whisper_mods
        if post.whisper_to is not None:
            out["whisper_to"] = post.whisper_to
    if post.data is None:
        out["data"] = None
        out["deleted"] = True
    else:
        out["data"] = b64(post.data)
        out["signature"] = b64(post.signature or b"")
    return out


@dataclass
class CommunityState:
    """Everything the community server stores; ``clock`` gives Unix seconds."""

    clock: Callable[[], float]
    rooms: dict[str, Room] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    inbox: list[InboxItem] = field(default_factory=list)
    _next_message_id: int = 1
    _next_file_id: int = 1
    _next_inbox_id: int = 1

    def add_room(self, spec: RoomSpec) -> Room:
        """Create a configured room; its image becomes a permanent room file."""
        room = Room(spec.token, spec.name, spec.description, self.clock())
        if spec.image is not None:
            image = self.add_file(room, spec.image, "image", permanent=True)
            room.image_id = image.id
        self.rooms[spec.token] = room
        return room

    def update_room(
        self,
        token: str,
        *,
        name: str | None = None,
        description: str | None = None,
        image: bytes | None = None,
    ) -> Room:
        """What an admin's ``PUT /room/{room}`` does (§5.4): change the info, bump
        ``info_updates`` so that ``pollInfo`` serves the new details."""
        room = self.room(token)
        if name is not None:
            room.name = name
        if description is not None:
            room.description = description
        if image is not None:
            room.image_id = self.add_file(room, image, "image", permanent=True).id
        room.info_updates += 1
        return room

    def room(self, token: str) -> Room:
        """The room, or 404."""
        room = self.rooms.get(token)
        if room is None:
            raise HttpError(404, f"no such room: {token}")
        return room

    def touch(self, user: str, room: Room | None = None) -> None:
        """Record that ``user`` made an authenticated request (in ``room``)."""
        self.users.add(user)
        if room is not None:
            room.active[user] = self.clock()

    # --- posts ---------------------------------------------------------------------------

    def add_post(
        self,
        room: Room,
        author: str,
        data: bytes,
        signature: bytes,
        *,
        whisper_to: str | None = None,
        whisper_mods: bool = False,
    ) -> Post:
        """Store a new post (a whisper if ``whisper_to``/``whisper_mods``) with the next
        message id and room seqno."""
        seqno = room.next_seqno()
        post = Post(self._next_message_id, author, self.clock(), seqno, seqno, data, signature)
        post.whisper_to, post.whisper_mods = whisper_to, whisper_mods
        self._next_message_id += 1
        room.posts[post.id] = post
        return post

    def edit_post(self, room: Room, post: Post, data: bytes, signature: bytes) -> None:
        """Replace a post's content; the new seqno makes ``since`` serve it again (§5.6)."""
        post.data, post.signature, post.edited = data, signature, self.clock()
        post.seqno = post.seqno_data = room.next_seqno()

    def delete_post(self, room: Room, post: Post) -> None:
        """Delete a post: content and reactions go, the seqno moves (§5.5, §5.6)."""
        post.data = post.signature = None
        post.reactions.clear()
        post.seqno = post.seqno_data = room.next_seqno()

    def react(self, room: Room, post: Post, user: str, emoji: str, add: bool) -> bool:
        """Add or remove one reaction; bump the post's seqno only when something changed."""
        who = post.reactions.get(emoji, {})
        if add == (user in who):
            return False
        if add:
            post.reactions.setdefault(emoji, who)[user] = self.clock()
        else:
            del who[user]
            if not who:
                del post.reactions[emoji]
        post.seqno = room.next_seqno()
        return True

    def since(
        self, room: Room, seqno: int, limit: int, with_reactions: bool, viewer: str | None = None
    ) -> list[Post]:
        """Posts changed after ``seqno`` that ``viewer`` may see, oldest change first (§5.5)."""

        def key(post: Post) -> int:
            return post.seqno if with_reactions else post.seqno_data

        changed = sorted(
            (p for p in room.posts.values() if key(p) > seqno and room.visible(p, viewer)),
            key=key,
        )
        return changed[:limit]

    # --- files ---------------------------------------------------------------------------

    def add_file(
        self, room: Room, data: bytes, filename: str | None, *, permanent: bool = False
    ) -> StoredFile:
        """Store an upload; unreferenced uploads expire after an hour (§5.8)."""
        now = self.clock()
        expires = None if permanent else now + UNREFERENCED_FILE_TTL
        stored = StoredFile(self._next_file_id, data, filename, now, expires)
        self._next_file_id += 1
        room.files[stored.id] = stored
        return stored

    def keep_files(self, room: Room, file_ids: list[int]) -> None:
        """Files referenced by a post live for the post expiry (§5.8)."""
        for file_id in file_ids:
            stored = room.files.get(file_id)
            if stored is not None and stored.expires is not None:
                stored.expires = max(stored.expires, self.clock() + POSTED_FILE_TTL)

    def get_file(self, room: Room, file_id: int) -> StoredFile:
        """A file that exists and has not expired, else 404."""
        stored = room.files.get(file_id)
        if stored is None or (stored.expires is not None and stored.expires < self.clock()):
            raise HttpError(404, "file not found")
        return stored

    # --- inbox ---------------------------------------------------------------------------

    def add_inbox(self, sender: str, recipient: str, message: bytes) -> InboxItem:
        """Queue a blinded DM; the recipient must have used this server (else 404, §5.10)."""
        if recipient not in self.users:
            raise HttpError(404, "recipient has never used this server")
        now = self.clock()
        item = InboxItem(self._next_inbox_id, now, now + INBOX_TTL, sender, recipient, message)
        self._next_inbox_id += 1
        self.inbox.append(item)
        return item

    def box(self, user: str, *, outgoing: bool, after: int = 0) -> list[InboxItem]:
        """The user's live inbox (or outbox) items with id > ``after``."""
        now = self.clock()
        return [
            item
            for item in self.inbox
            if (item.sender if outgoing else item.recipient) == user
            and item.id > after
            and item.expires_at > now
        ]

    def clear_inbox(self, user: str) -> int:
        """Delete the user's inbox; return how many items went."""
        before = len(self.inbox)
        self.inbox = [item for item in self.inbox if item.recipient != user]
        return before - len(self.inbox)

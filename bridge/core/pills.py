"""Who a Session mention names on Matrix, looked up before the (pure) text converter runs.

A mentioned Session id (``@05…``, or ``@15…`` in a community) that is one of the bridge's own
logins, or a Session ID linked to a Matrix account (:class:`LinkedIds`, docs/migration.md §2),
names the Matrix user who owns it, shown with their display name; any other id names its
ghost, shown with the ghost's name (docs/matrix-side.md §3.6). The lookups are async (database,
homeserver); :func:`bridge.core.convert.text_to_matrix.session_text_to_content` gets the
result as a plain function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from mautrix.appservice import IntentAPI

from bridge.core.convert.mentions import mentioned_session_ids
from bridge.core.convert.text_to_matrix import (
    MentionResolver,
    MentionTarget,
    session_text_to_content,
)
from bridge.core.ghosts import GhostManager
from bridge.ids import InvalidId, SessionID
from bridge.matrix.reads import member_display_name
from bridge.session.blinding import blind15_candidates, blind25_id

MemberName = Callable[[str], Awaitable[str]]
"""The display name of a Matrix user (in the room the text goes to)."""


async def mention_resolver(
    text: str,
    *,
    ghosts: GhostManager,
    owners: Mapping[str, str],
    member_name: MemberName,
) -> MentionResolver:
    """The resolver of the mentions in ``text``: ``owners`` maps the mentioned ids that are
    logins (lowercase) to their Matrix owners; every other id becomes its ghost's pill."""
    mentioned = mentioned_session_ids(text)
    names = await ghosts.pill_names([sid for sid in mentioned if sid not in owners])
    owner_names = {sid: await member_name(owners[sid]) for sid in mentioned if sid in owners}

    def resolve(session_id: str) -> MentionTarget | None:
        owner = owners.get(session_id)
        if owner is not None:
            return MentionTarget(owner, owner_names.get(session_id) or owner)
        return MentionTarget(ghosts.mxid_for(session_id), names.get(session_id) or session_id)

    return resolve


async def session_text_in_room(
    body: str,
    *,
    room_id: str,
    sender_mxid: str,
    reader: IntentAPI,
    ghosts: GhostManager,
    owners: Callable[[Iterable[str]], Mapping[str, str]],
) -> dict[str, Any]:
    """Matrix content for Session ``body`` sent into ``room_id`` by ``sender_mxid``: each
    mention a pill (``owners`` maps the mentioned ids to the Matrix users who own them, as
    :func:`mention_resolver` takes them), owners shown with their name in that room (read by
    ``reader``, a member of the room)."""

    async def name(mxid: str) -> str:
        return await member_display_name(reader, room_id, mxid)

    resolve = await mention_resolver(
        body, ghosts=ghosts, owners=owners(mentioned_session_ids(body)), member_name=name
    )
    return session_text_to_content(body, resolve, sender_mxid=sender_mxid)


class LinkedIds:
    """The Session IDs linked to Matrix accounts (``link``), in memory: the link service is
    their only writer. Unlike logins they keep their ghosts (history, and they may still
    write from Session); only their mentions name the Matrix account."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._blinded: dict[tuple[str, bytes], frozenset[str]] = {}

    def load(self, links: Iterable[tuple[str, str]]) -> None:
        """Replace the map with ``(Session ID, Matrix ID)`` pairs."""
        self._owners = {sid.lower(): mxid for sid, mxid in links}

    def add(self, session_id: str, mxid: str) -> None:
        self._owners[session_id.lower()] = mxid

    def remove(self, session_id: str) -> None:
        self._owners.pop(session_id.lower(), None)

    def is_linked(self, session_id: str) -> bool:
        return session_id.lower() in self._owners

    def is_moved(self, session_id: str) -> bool:
        """Whether ``session_id`` is linked, or is a linked id's blinded id on a server that
        :meth:`blinded_ids` was asked about (the portals of the link's effects)."""
        wanted = session_id.lower()
        if wanted in self._owners:
            return True
        return any(wanted in ids for (sid, _), ids in self._blinded.items() if sid in self._owners)

    def owner(self, session_id: str, server_pubkey: bytes | None = None) -> str | None:
        """The Matrix account of a linked ``05…`` id, or of its blinded id on the server."""
        wanted = session_id.lower()
        found = self._owners.get(wanted)
        if found is not None or server_pubkey is None or wanted[:2] not in ("15", "25"):
            return found
        for sid, mxid in self._owners.items():
            if wanted in self.blinded_ids(sid, server_pubkey):
                return mxid
        return None

    def blinded_ids(self, session_id: str, server_pubkey: bytes) -> frozenset[str]:
        """Every id ``session_id`` may show on the server (both ``15…`` signs, ``25…``)."""
        key = (session_id.lower(), server_pubkey)
        ids = self._blinded.get(key)
        if ids is None:
            try:
                sid = SessionID.parse(session_id)
            except InvalidId:
                return frozenset()
            ids = frozenset(
                [
                    *(c.value for c in blind15_candidates(sid, server_pubkey)),
                    blind25_id(sid, server_pubkey).value,
                ]
            )
            self._blinded[key] = ids
        return ids

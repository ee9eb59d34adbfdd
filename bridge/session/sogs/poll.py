"""One poll of one community server as one ``/batch`` request (docs/session-protocol.md §5.9).

Like desktop's poller, each joined room contributes ``pollInfo/{info_updates}`` and
``messages/since/{seqno}?t=r&reactors=N``; the inbox and outbox contribute
``/inbox/since/{id}`` and ``/outbox/since/{id}``. :func:`build_poll` makes the subrequests and
:func:`parse_poll` turns the answers into a :class:`PollResult`. Pure functions: the client
does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.sogs.decode import (
    decode_inbox_item,
    decode_message,
    decode_poll_info,
    decode_room,
)
from bridge.session.sogs.errors import InvalidCommunityReply
from bridge.session.sogs.models import (
    BadItem,
    CommunityMessage,
    InboxEntry,
    PollResult,
    ReactionUpdate,
    RoomInfo,
    RoomUpdate,
)
from bridge.session.sogs.transport import error_for_status
from bridge.session.sogs.urls import CommunityServerRef

__all__ = ["DEFAULT_PAGE", "PollCursors", "build_poll", "parse_poll", "room_reply"]

DEFAULT_PAGE = 100  # the server's default ``limit`` for messages/since (§5.5)
BOX_PAGE = 100  # the server's default ``limit`` for inbox/outbox since (§5.10)


@dataclass(frozen=True, slots=True)
class PollCursors:
    """Where a poll starts: per-room seqno and info_updates, inbox and outbox ids."""

    seqnos: Mapping[str, int]
    info_updates: Mapping[str, int]
    inbox_id: int
    outbox_id: int


def build_poll(rooms: Sequence[str], cursors: PollCursors, reactors: int) -> list[dict[str, Any]]:
    """The subrequests of one poll: two per room, then inbox and outbox."""
    subs: list[dict[str, Any]] = []
    for token in rooms:
        info = cursors.info_updates.get(token, 0)
        seqno = cursors.seqnos.get(token, 0)
        subs.append({"method": "GET", "path": f"/room/{token}/pollInfo/{info}"})
        since = f"/room/{token}/messages/since/{seqno}?t=r&reactors={reactors}"
        subs.append({"method": "GET", "path": since})
    subs.append({"method": "GET", "path": f"/inbox/since/{cursors.inbox_id}"})
    subs.append({"method": "GET", "path": f"/outbox/since/{cursors.outbox_id}"})
    return subs


def _sub(result: object, where: str) -> tuple[int, Any]:
    if not isinstance(result, dict):
        raise InvalidCommunityReply(f"{where}: batch result is not an object")
    code = result.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise InvalidCommunityReply(f"{where}: batch result without a code")
    return code, result.get("body")


def _detail(body: object) -> str:
    return body if isinstance(body, str) else ""


def room_reply(token: str, result: object) -> RoomInfo:
    """The room object of one ``GET /room/{token}`` subrequest of a ``/batch`` (§5.4, §5.9);
    raises the room's error (:class:`RoomNotFound` for a 404)."""
    code, body = _sub(result, f"room {token}")
    if not 200 <= code < 300:
        raise error_for_status(code, _detail(body), room=token)
    return decode_room(body)


def _room_update(token: str, info_res: object, since_res: object, seqno: int) -> RoomUpdate:
    info_code, info_body = _sub(info_res, f"room {token} pollInfo")
    since_code, since_body = _sub(since_res, f"room {token} since")
    for code, body in ((info_code, info_body), (since_code, since_body)):
        if not 200 <= code < 300:
            return RoomUpdate(
                token, None, (), seqno, error=error_for_status(code, _detail(body), room=token)
            )
    try:
        info = decode_poll_info(info_body)
    except SessionError as exc:
        return RoomUpdate(token, None, (), seqno, error=exc)
    if not isinstance(since_body, list):
        error = InvalidCommunityReply(f"room {token}: messages/since is not a list")
        return RoomUpdate(token, info, (), seqno, error=error)
    items: list[CommunityMessage | ReactionUpdate] = []
    bad: list[BadItem] = []
    for raw in since_body:
        try:
            items.append(decode_message(token, raw))
        except SessionError as exc:
            bad.append(BadItem(f"room {token}", exc))
            seq = raw.get("seqno") if isinstance(raw, dict) else None
            if isinstance(seq, int) and not isinstance(seq, bool):
                seqno = max(seqno, seq)  # skip past an item we can never decode
    seqno = max([seqno, *(item.seqno for item in items)])
    more = len(since_body) >= DEFAULT_PAGE
    return RoomUpdate(token, info, tuple(items), seqno, more, tuple(bad))


def _box(
    identity: Identity, server: CommunityServerRef, result: object, *, outgoing: bool
) -> tuple[list[InboxEntry], list[BadItem], bool]:
    """A box's entries, the undecodable ones, and whether it was a full page (more wait)."""
    where = "outbox" if outgoing else "inbox"
    code, body = _sub(result, where)
    if code == 304:  # "since" with nothing new (§5.10)
        return [], [], False
    if not 200 <= code < 300:
        raise error_for_status(code, _detail(body))
    if not isinstance(body, list):
        raise InvalidCommunityReply(f"{where}: not a list")
    entries: list[InboxEntry] = []
    bad: list[BadItem] = []
    for raw in body:
        try:
            entries.append(decode_inbox_item(identity, server.pubkey, raw, outgoing=outgoing))
        except SessionError as exc:
            bad.append(BadItem(where, exc))
    return entries, bad, len(body) >= BOX_PAGE


def parse_poll(
    identity: Identity,
    server: CommunityServerRef,
    rooms: Sequence[str],
    cursors: PollCursors,
    results: object,
) -> PollResult:
    """Turn the ``/batch`` answer into a :class:`PollResult` (cursors not yet committed)."""
    if not isinstance(results, list) or len(results) != 2 * len(rooms) + 2:
        raise InvalidCommunityReply("batch reply does not have one result per subrequest")
    updates = {
        token: _room_update(
            token, results[2 * i], results[2 * i + 1], cursors.seqnos.get(token, 0)
        )
        for i, token in enumerate(rooms)
    }
    inbox: list[InboxEntry] = []
    outbox: list[InboxEntry] = []
    bad: list[BadItem] = []
    inbox_error: SessionError | None = None
    box_more = False
    try:
        inbox, bad_in, more_in = _box(identity, server, results[-2], outgoing=False)
        outbox, bad_out, more_out = _box(identity, server, results[-1], outgoing=True)
        bad, box_more = bad_in + bad_out, more_in or more_out
    except SessionError as exc:
        inbox_error = exc
    return PollResult(
        server,
        updates,
        tuple(inbox),
        tuple(outbox),
        max([cursors.inbox_id, *(e.id for e in inbox)]),
        max([cursors.outbox_id, *(e.id for e in outbox)]),
        tuple(bad),
        inbox_error,
        box_more,
    )

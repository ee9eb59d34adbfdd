"""Typed views of the four user configs' data (docs/user-configs.md §2).

Pure functions over the ``&`` dict of a config message: readers return frozen dataclasses,
writers return a *new* data dict for :func:`bridge.session.groups.config.next_message`. Keys
the bridge does not know are kept as they are (another app may use them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.session.groups.bencode import BValue
from bridge.session.groups.config_data import ConfigData

USER_PROFILE, CONTACTS, CONVO_INFO_VOLATILE, USER_GROUPS = 2, 3, 4, 5
#: Namespace → encryption domain (docs/groups-v2.md §1.8).
DOMAINS: dict[int, bytes] = {
    USER_PROFILE: b"UserProfile",
    CONTACTS: b"Contacts",
    CONVO_INFO_VOLATILE: b"ConvoInfoVolatile",
    USER_GROUPS: b"UserGroups",
}
NAMESPACES = tuple(DOMAINS)


def _bytes(value: BValue | None) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _int(value: BValue | None) -> int:
    return value if isinstance(value, int) else 0


def _text(value: BValue | None) -> str | None:
    raw = _bytes(value)
    return raw.decode("utf-8", "replace") if raw else None


def _dict(value: BValue | None) -> dict[bytes, BValue]:
    return dict(value) if isinstance(value, dict) else {}


def _copy(data: Mapping[bytes, BValue]) -> ConfigData:
    return {k: (_copy(v) if isinstance(v, dict) else v) for k, v in data.items()}


def _id_bytes(session_id: str) -> bytes:
    raw = bytes.fromhex(session_id)
    if len(raw) != 33:
        raise ValueError("expected a 66-hex-digit id")
    return raw


# ---------------------------------------------------------------------------------- UserProfile


@dataclass(frozen=True)
class UserProfileView:
    """ns 2: ``n`` name, ``p`` picture URL, ``q`` picture key, ``t`` update time (seconds)."""

    name: str | None
    picture_url: str | None
    picture_key: bytes | None
    updated: int

    @property
    def empty(self) -> bool:
        return self.name is None and self.picture_url is None


def user_profile(data: Mapping[bytes, BValue]) -> UserProfileView:
    """The profile in a UserProfile config (picture only when both URL and key are set)."""
    url, key = _text(data.get(b"p")), _bytes(data.get(b"q"))
    if not url or not key:
        url, key = None, None
    return UserProfileView(_text(data.get(b"n")), url, key, _int(data.get(b"t")))


def set_user_profile(
    data: Mapping[bytes, BValue],
    name: str | None,
    picture: tuple[str, bytes] | None,
    updated: int,
) -> ConfigData:
    """A copy of ``data`` with the profile replaced (``picture`` is ``(url, key)``)."""
    out = _copy(data)
    for key in (b"n", b"p", b"q"):
        out.pop(key, None)
    if name:
        out[b"n"] = name.encode()
    if picture is not None:
        out[b"p"], out[b"q"] = picture[0].encode(), picture[1]
    out[b"t"] = updated
    return out


# ---------------------------------------------------------------------------------- Contacts


@dataclass(frozen=True)
class Contact:
    """ns 3, ``c`` → 33-byte id → ``n N p q a A b j + t``."""

    session_id: str
    name: str | None
    nickname: str | None
    picture_url: str | None
    picture_key: bytes | None
    approved: bool
    approved_me: bool
    blocked: bool
    created: int
    priority: int


def contacts(data: Mapping[bytes, BValue]) -> dict[str, Contact]:
    """Every contact by its ``05…`` hex id."""
    out: dict[str, Contact] = {}
    for raw_id, value in _dict(data.get(b"c")).items():
        if len(raw_id) != 33 or not isinstance(value, dict):
            continue
        sid = raw_id.hex()
        out[sid] = Contact(
            session_id=sid,
            name=_text(value.get(b"n")),
            nickname=_text(value.get(b"N")),
            picture_url=_text(value.get(b"p")),
            picture_key=_bytes(value.get(b"q")),
            approved=bool(_int(value.get(b"a"))),
            approved_me=bool(_int(value.get(b"A"))),
            blocked=bool(_int(value.get(b"b"))),
            created=_int(value.get(b"j")),
            priority=_int(value.get(b"+")),
        )
    return out


def set_contact(
    data: Mapping[bytes, BValue],
    session_id: str,
    *,
    approved: bool | None = None,
    approved_me: bool | None = None,
    blocked: bool | None = None,
    name: str | None = None,
    created: int | None = None,
) -> ConfigData:
    """A copy of ``data`` with one contact created or changed (flags: ``None`` = unchanged).

    ``n`` is always written (maybe empty) so the entry never becomes an empty dict.
    """
    out = _copy(data)
    table = _dict(out.get(b"c"))
    raw_id = _id_bytes(session_id)
    entry = _dict(table.get(raw_id))
    entry.setdefault(b"n", b"")
    if name is not None:
        entry[b"n"] = name.encode()
    for key, flag in ((b"a", approved), (b"A", approved_me), (b"b", blocked)):
        if flag is True:
            entry[key] = 1
        elif flag is False:
            entry.pop(key, None)
    if created is not None and b"j" not in entry:
        entry[b"j"] = created
    table[raw_id] = entry
    out[b"c"] = table
    return out


# ---------------------------------------------------------------------- ConvoInfoVolatile


@dataclass(frozen=True)
class ConvoRead:
    """ns 4: one conversation's ``r`` (last read, ms) and ``u`` (marked unread)."""

    last_read: int
    unread: bool


def _reads(table: Mapping[bytes, BValue]) -> dict[str, ConvoRead]:
    out: dict[str, ConvoRead] = {}
    for raw_id, value in table.items():
        if isinstance(value, dict):
            out[raw_id.hex()] = ConvoRead(_int(value.get(b"r")), bool(_int(value.get(b"u"))))
    return out


def one_to_one_reads(data: Mapping[bytes, BValue]) -> dict[str, ConvoRead]:
    """1:1 conversations (``1``) by ``05…`` id."""
    return _reads(_dict(data.get(b"1")))


def group_reads(data: Mapping[bytes, BValue]) -> dict[str, ConvoRead]:
    """Groups v2 conversations (``g``) by ``03…`` id."""
    return _reads(_dict(data.get(b"g")))


def community_reads(data: Mapping[bytes, BValue]) -> dict[tuple[str, str], ConvoRead]:
    """Communities (``o`` → base URL → ``R`` → room) by (base URL, room)."""
    out: dict[tuple[str, str], ConvoRead] = {}
    for url, server in _dict(data.get(b"o")).items():
        for room, value in _dict(_dict(server).get(b"R")).items():
            if isinstance(value, dict):
                read = ConvoRead(_int(value.get(b"r")), bool(_int(value.get(b"u"))))
                out[(url.decode("utf-8", "replace"), room.decode("utf-8", "replace"))] = read
    return out


def set_read(data: Mapping[bytes, BValue], table: bytes, convo_id: str, at_ms: int) -> ConfigData:
    """A copy of ``data`` where conversation ``convo_id`` (33-byte hex id in ``table``
    ``b"1"`` or ``b"g"``) is read up to ``at_ms``; never moves a read time backwards, and
    clears a "marked unread" flag."""
    out = _copy(data)
    convos = _dict(out.get(table))
    raw_id = _id_bytes(convo_id)
    entry = _dict(convos.get(raw_id))
    entry[b"r"] = max(_int(entry.get(b"r")), at_ms)
    entry.pop(b"u", None)
    convos[raw_id] = entry
    out[table] = convos
    return out


#: libsession's pruning age of ConvoInfoVolatile (docs/user-configs.md §2): when pushing, a
#: conversation last read more than this long ago and not marked unread is dropped.
CONVO_PRUNE_MS = 45 * 86_400_000


def _stale(value: BValue, cutoff_ms: int) -> bool:
    if not isinstance(value, dict) or _int(value.get(b"u")):
        return False
    return _int(value.get(b"r")) < cutoff_ms


def _fresh(table: BValue | None, cutoff_ms: int) -> dict[bytes, BValue] | None:
    """``table`` without its stale conversations; None when none is left."""
    kept = {k: v for k, v in _dict(table).items() if not _stale(v, cutoff_ms)}
    return kept or None


def prune_convo_info(
    data: Mapping[bytes, BValue], now_ms: int, max_age_ms: int = CONVO_PRUNE_MS
) -> ConfigData:
    """A copy of ConvoInfoVolatile ``data`` without the conversations (1:1 ``1``, groups
    ``g``, legacy groups ``C``, community rooms in ``o``) last read before ``now_ms -
    max_age_ms`` and not marked unread, as libsession prunes before each push; a community
    server left without rooms goes too. Other keys are kept."""
    cutoff = now_ms - max_age_ms
    out = _copy(data)
    for table in (b"1", b"g", b"C"):
        if isinstance(out.get(table), dict):
            kept = _fresh(out[table], cutoff)
            if kept is None:
                del out[table]
            else:
                out[table] = kept
    if isinstance(out.get(b"o"), dict):
        servers: dict[bytes, BValue] = {}
        for url, server in _dict(out[b"o"]).items():
            if isinstance(server, dict) and isinstance(server.get(b"R"), dict):
                rooms = _fresh(server[b"R"], cutoff)
                if rooms is None:
                    continue
                server = {**server, b"R": rooms}
            servers[url] = server
        if servers:
            out[b"o"] = servers
        else:
            del out[b"o"]
    return out


# ---------------------------------------------------------------------------------- UserGroups


@dataclass(frozen=True)
class JoinedGroup:
    """ns 5, ``g`` → 33-byte ``03…`` id (docs/groups-v2.md §8)."""

    group_id: str
    secret_key: bytes | None  # 32-byte admin seed (``K``), None when not admin
    auth_data: bytes | None  # 100-byte memberAuthData (``s``)
    name: str | None
    joined: int
    invited: bool
    removed: int  # 0, 1 kicked, 2 destroyed
    priority: int


def groups_joined(data: Mapping[bytes, BValue]) -> list[JoinedGroup]:
    """Every groups-v2 entry, by id."""
    out: list[JoinedGroup] = []
    for raw_id, value in sorted(_dict(data.get(b"g")).items()):
        if len(raw_id) != 33 or not isinstance(value, dict):
            continue
        seed = _bytes(value.get(b"K"))
        out.append(
            JoinedGroup(
                group_id=raw_id.hex(),
                secret_key=seed if seed and len(seed) == 32 else None,
                auth_data=_bytes(value.get(b"s")) or None,
                name=_text(value.get(b"n")),
                joined=_int(value.get(b"j")),
                invited=bool(_int(value.get(b"i"))),
                removed=_int(value.get(b"r")),
                priority=_int(value.get(b"+")),
            )
        )
    return out


def set_group(
    data: Mapping[bytes, BValue],
    group_id: str,
    *,
    name: str | None,
    joined: int,
    secret_key: bytes | None = None,
    auth_data: bytes | None = None,
    invited: bool = False,
) -> ConfigData:
    """A copy of ``data`` with group ``group_id`` joined (or still invited). ``K`` is always
    written (empty when not admin) to keep the entry alive (docs/groups-v2.md §8)."""
    out = _copy(data)
    table = _dict(out.get(b"g"))
    raw_id = _id_bytes(group_id)
    entry = _dict(table.get(raw_id))
    entry[b"K"] = secret_key or b""
    if secret_key:
        entry.pop(b"s", None)
    elif auth_data is not None:
        entry[b"s"] = auth_data
    if name is not None:
        entry[b"n"] = name.encode()
    entry[b"j"] = joined
    entry.pop(b"r", None)
    if invited:
        entry[b"i"] = 1
    else:
        entry.pop(b"i", None)
    table[raw_id] = entry
    out[b"g"] = table
    return out

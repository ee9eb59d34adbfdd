"""Typed view of groups::Members data and its builder (docs/groups-v2.md §2.2).

Members data is ``{"m": {<33-byte session id>: {member dict}}}``. :func:`parse_members` gives a
frozen :class:`Members` (entries whose key is not a 33-byte ``05`` id, or whose value is not a
dict, are kept aside untouched); :func:`members_data` writes it back for the config writer.
Unknown keys are preserved at every level (§2.2 "forward compatibility", §10.2 #17).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from bridge.ids import SessionID
from bridge.session.groups.bencode import BValue
from bridge.session.groups.config_data import ConfigData
from bridge.session.groups.info import (
    NAME_MAX,
    Picture,
    decode_text,
    parse_picture,
    picture_data,
    positive_int,
    truncate_utf8,
)

_MEMBER_KEYS = frozenset({b"n", b"p", b"q", b"A", b"P", b"I", b"s", b"R"})
_SESSION_ID_SIZE = 33
_E = TypeVar("_E", bound=enum.IntEnum)


class SendStatus(enum.IntEnum):
    """Value of ``I`` (invite) and ``P`` (promotion); absent means accepted (§2.2)."""

    SENT = 1
    FAILED = 2
    NOT_SENT = 3


class Removal(enum.IntEnum):
    """Value of ``R``: removal pending (§2.2)."""

    MEMBER = 1
    MEMBER_AND_MESSAGES = 2


class MemberStatus(enum.Enum):
    """Consolidated state, as libsession ``get_status`` / nodejs ``MemberStateGroupV2``."""

    INVITE_NOT_SENT = "invite_not_sent"
    INVITE_SENT = "invite_sent"
    INVITE_FAILED = "invite_failed"
    INVITE_ACCEPTED = "invite_accepted"
    PROMOTION_NOT_SENT = "promotion_not_sent"
    PROMOTION_SENT = "promotion_sent"
    PROMOTION_FAILED = "promotion_failed"
    PROMOTION_ACCEPTED = "promotion_accepted"
    REMOVED_MEMBER = "removed_member"
    REMOVED_MEMBER_AND_MESSAGES = "removed_member_and_messages"


_INVITE = {
    SendStatus.NOT_SENT: MemberStatus.INVITE_NOT_SENT,
    SendStatus.SENT: MemberStatus.INVITE_SENT,
    SendStatus.FAILED: MemberStatus.INVITE_FAILED,
}
_PROMOTION = {
    SendStatus.NOT_SENT: MemberStatus.PROMOTION_NOT_SENT,
    SendStatus.SENT: MemberStatus.PROMOTION_SENT,
    SendStatus.FAILED: MemberStatus.PROMOTION_FAILED,
}


@dataclass(frozen=True)
class Member:
    """One member entry. A new member defaults to an invite not yet sent (``I = 3``, §2.2)."""

    session_id: SessionID
    name: str = ""
    picture: Picture | None = None
    admin: bool = False  # "A": informational; admin power is knowing the seed
    invite: SendStatus | None = SendStatus.NOT_SENT  # "I"; None = accepted
    promotion: SendStatus | None = None  # "P"; None = accepted (when admin)
    supplement: bool = False  # "s": invited with history
    removal: Removal | None = None  # "R"
    extra: Mapping[bytes, BValue] = field(default_factory=dict)  # unknown keys, kept

    @property
    def status(self) -> MemberStatus:
        """Consolidated status: removal wins, then promotion (admins), then invite (§2.2)."""
        if self.removal is Removal.MEMBER_AND_MESSAGES:
            return MemberStatus.REMOVED_MEMBER_AND_MESSAGES
        if self.removal is Removal.MEMBER:
            return MemberStatus.REMOVED_MEMBER
        if self.admin:
            if self.promotion is None:
                return MemberStatus.PROMOTION_ACCEPTED
            return _PROMOTION[self.promotion]
        if self.invite is None:
            return MemberStatus.INVITE_ACCEPTED
        return _INVITE[self.invite]


@dataclass(frozen=True)
class Members:
    """groups::Members: members sorted by session id, plus everything not understood."""

    members: tuple[Member, ...] = ()
    unparsed: Mapping[bytes, BValue] = field(default_factory=dict)  # odd "m" entries
    extra: Mapping[bytes, BValue] = field(default_factory=dict)  # top-level keys besides "m"

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def get(self, session_id: SessionID) -> Member | None:
        """The member with ``session_id``, if any."""
        return next((m for m in self.members if m.session_id == session_id), None)

    def admins(self) -> tuple[Member, ...]:
        """Members flagged ``A`` (informational, §2.2)."""
        return tuple(m for m in self.members if m.admin)


def _enum_value(kind: type[_E], value: BValue | None) -> _E | None:
    number = positive_int(value)
    if number is None:
        return None
    try:
        return kind(number)
    except ValueError:
        return None


def parse_member(key: bytes, value: Mapping[bytes, BValue]) -> Member:
    """Build one :class:`Member` from its 33-byte id key and dict. Odd values read as absent."""
    admin = positive_int(value.get(b"A")) is not None
    return Member(
        session_id=SessionID.from_key(key[1:]),
        name=decode_text(value.get(b"n")),
        picture=parse_picture(value.get(b"p"), value.get(b"q")),
        admin=admin,
        invite=_enum_value(SendStatus, value.get(b"I")),
        promotion=_enum_value(SendStatus, value.get(b"P")),
        supplement=positive_int(value.get(b"s")) is not None,
        removal=_enum_value(Removal, value.get(b"R")),
        extra={k: v for k, v in value.items() if k not in _MEMBER_KEYS},
    )


def parse_members(data: Mapping[bytes, BValue]) -> Members:
    """Build the typed view from groups::Members data; never raises on odd entries."""
    entries = data.get(b"m")
    members: list[Member] = []
    unparsed: dict[bytes, BValue] = {}
    if isinstance(entries, dict):
        for key, value in entries.items():
            if len(key) == _SESSION_ID_SIZE and key[0] == 0x05 and isinstance(value, dict):
                members.append(parse_member(key, value))
            else:
                unparsed[key] = value
    extra = {k: v for k, v in data.items() if k != b"m" or not isinstance(entries, dict)}
    members.sort(key=lambda m: m.session_id.raw)
    return Members(tuple(members), unparsed, extra)


def member_data(member: Member) -> ConfigData:
    """The member's dict following §2.2's writing rules, unknown keys kept."""
    out: ConfigData = {k: v for k, v in member.extra.items() if k not in _MEMBER_KEYS}
    # "n" is always written, even empty, so the member dict never prunes away (§2.2).
    out[b"n"] = truncate_utf8(member.name, NAME_MAX)
    out.update(picture_data(member.picture))
    if member.admin:
        out[b"A"] = 1
        if member.promotion is not None:
            out[b"P"] = int(member.promotion)
    elif member.invite is not None:
        # "I" is never written for admins; "s" only matters while the invite is pending.
        out[b"I"] = int(member.invite)
        if member.supplement:
            out[b"s"] = 1
    if member.removal is not None:
        out[b"R"] = int(member.removal)
    return out


def members_data(members: Members) -> ConfigData:
    """Data dict for the writer: every member, the unparsed entries and extra keys kept."""
    entries: dict[bytes, BValue] = dict(members.unparsed)
    for member in members.members:
        entries[member.session_id.raw] = member_data(member)
    out: ConfigData = dict(members.extra)
    if entries:
        out[b"m"] = entries
    return out

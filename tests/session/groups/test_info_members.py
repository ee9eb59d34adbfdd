"""groups::Info and groups::Members typed views and builders (docs/groups-v2.md §2.1, §2.2).

Risks of §10.2: #13 (Info times are seconds), #17 (unknown member keys survive an admin edit).
"""

from __future__ import annotations

import dataclasses

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ids import SessionID
from bridge.session.groups import config, multipart
from bridge.session.groups.bencode import BValue
from bridge.session.groups.config_data import normalize
from bridge.session.groups.info import Info, Picture, info_data, parse_info, to_seconds
from bridge.session.groups.members import (
    Member,
    Members,
    MemberStatus,
    Removal,
    SendStatus,
    member_data,
    members_data,
    parse_members,
)
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
FIRST = CASES["group_info_first_push"]
GROUP_PK, GROUP_SK = sodium.crypto_sign_seed_keypair(bytes.fromhex(FIRST["group_seed"]))
ENC_KEY = bytes.fromhex(FIRST["group_enc_key"])
SID_A = SessionID("05" + "aa" * 32)
SID_B = SessionID("05" + "bb" * 32)
KEY = b"k" * 32


def test_info_from_first_push_vector() -> None:
    message = config.parse_message(bytes.fromhex(FIRST["expected_signed_plaintext"]), GROUP_PK)
    info = parse_info(message.data)
    assert info.name == "Determinism Group"
    assert info.disappearing_timer == 3600
    assert info.created == 1682529839
    assert not info.destroyed and info.picture is None and info.description == ""
    assert info_data(info) == message.data


def test_info_setter_rules() -> None:
    info = Info(
        name="",
        description="",
        picture=Picture("", KEY),
        disappearing_timer=0,
        delete_before=-5,
        created=None,
    )
    assert info_data(info) == {}
    full = Info(
        name="N",
        description="D",
        picture=Picture("http://f/1", KEY),
        disappearing_timer=60,
        delete_before=100,
        delete_attach_before=200,
        created=300,
        destroyed=True,
    )
    assert info_data(full) == {
        b"n": b"N",
        b"o": b"D",
        b"p": b"http://f/1",
        b"q": KEY,
        b"E": 60,
        b"d": 100,
        b"D": 200,
        b"c": 300,
        b"!": 1,
    }
    assert parse_info(info_data(full)) == full


def test_truncation_on_utf8_boundary() -> None:
    name = "a" + "é" * 60  # 121 bytes; byte 100 falls inside a character
    description = "€" * 700  # 2100 bytes
    data = info_data(Info(name=name, description=description))
    assert data[b"n"] == name[:50].encode() and len(name[:50].encode()) == 99
    assert data[b"o"] == ("€" * 666).encode()  # 1998 bytes
    member = member_data(Member(SID_A, name="ü" * 80))
    assert member[b"n"] == ("ü" * 50).encode()


def test_picture_needs_url_and_32_byte_key() -> None:
    assert parse_info({b"p": b"u", b"q": b"short"}).picture is None
    assert parse_info({b"q": KEY}).picture is None
    assert parse_info({b"p": b"", b"q": KEY}).picture is None
    assert parse_info({b"p": b"u", b"q": KEY}).picture == Picture("u", KEY)


def test_odd_values_read_as_absent() -> None:
    info = parse_info({b"n": 5, b"E": b"x", b"d": 0, b"!": 0, b"o": b"\xff\xfe"})
    assert info.name == "" and info.disappearing_timer is None and info.delete_before is None
    assert not info.destroyed and info.description == "\ufffd\ufffd"


def test_risk13_info_times_are_seconds() -> None:
    info = parse_info({b"d": 1_700_000_000, b"D": 1_600_000_000})
    assert info.deletes_message(1_699_999_999_999)  # ms just before the cut-off
    assert not info.deletes_message(1_700_000_000_000)
    assert info.deletes_attachments(1_599_999_999_000)
    assert not info.deletes_attachments(1_600_000_000_001)
    assert not Info().deletes_message(0)
    # "c" given in ms or µs is divided down to seconds (libsession v1.2.0).
    assert parse_info({b"c": 1_682_529_839_123}).created == 1_682_529_839
    assert to_seconds(1_682_529_839_123_456) == 1_682_529_839
    assert info_data(Info(created=1_682_529_839_000))[b"c"] == 1_682_529_839


def test_unknown_info_keys_are_kept() -> None:
    data: dict[bytes, BValue] = {b"n": b"x", b"Z": b"new", b"y": {b"k": 1}}
    info = parse_info(data)
    assert info.extra == {b"Z": b"new", b"y": {b"k": 1}}
    assert info_data(dataclasses.replace(info, name="y")) == {**data, b"n": b"y"}


# ---------------------------------------------------------------------------------- members


@pytest.mark.parametrize(
    ("member", "status"),
    [
        (Member(SID_A), MemberStatus.INVITE_NOT_SENT),
        (Member(SID_A, invite=SendStatus.SENT), MemberStatus.INVITE_SENT),
        (Member(SID_A, invite=SendStatus.FAILED), MemberStatus.INVITE_FAILED),
        (Member(SID_A, invite=None), MemberStatus.INVITE_ACCEPTED),
        (
            Member(SID_A, admin=True, promotion=SendStatus.NOT_SENT),
            MemberStatus.PROMOTION_NOT_SENT,
        ),
        (Member(SID_A, admin=True, promotion=SendStatus.SENT), MemberStatus.PROMOTION_SENT),
        (Member(SID_A, admin=True, promotion=SendStatus.FAILED), MemberStatus.PROMOTION_FAILED),
        (Member(SID_A, admin=True), MemberStatus.PROMOTION_ACCEPTED),
        (Member(SID_A, admin=True, removal=Removal.MEMBER), MemberStatus.REMOVED_MEMBER),
        (
            Member(SID_A, invite=SendStatus.SENT, removal=Removal.MEMBER_AND_MESSAGES),
            MemberStatus.REMOVED_MEMBER_AND_MESSAGES,
        ),
    ],
)
def test_member_status(member: Member, status: MemberStatus) -> None:
    assert member.status is status


def test_member_writing_rules() -> None:
    # "n" always written; "I" never for admins; "s" only with a pending invite.
    assert member_data(Member(SID_A, invite=None)) == {b"n": b""}
    assert member_data(Member(SID_A, admin=True, invite=SendStatus.SENT, supplement=True)) == {
        b"n": b"",
        b"A": 1,
    }
    assert member_data(Member(SID_A, name="x", supplement=True, removal=Removal.MEMBER)) == {
        b"n": b"x",
        b"I": 3,
        b"s": 1,
        b"R": 1,
    }
    with_pic = member_data(Member(SID_A, picture=Picture("u", KEY), invite=None))
    assert with_pic == {b"n": b"", b"p": b"u", b"q": KEY}


def test_members_parse_and_lookup() -> None:
    data: dict[bytes, BValue] = {
        b"m": {
            SID_B.raw: {b"n": b"Bob", b"A": 1, b"P": 1},
            SID_A.raw: {b"n": b"Alice", b"I": 2, b"s": 1},
            b"\x03" + b"c" * 32: {b"n": b"not a 05 id"},
            b"short": {b"n": b"bad key"},
            b"\x05" + b"d" * 32: b"not a dict",
        },
        b"X": 7,
    }
    members = parse_members(data)
    assert [m.session_id for m in members] == [SID_A, SID_B] and len(members) == 2
    alice = members.get(SID_A)
    assert alice is not None and alice.name == "Alice"
    assert alice.invite is SendStatus.FAILED and alice.supplement
    assert [m.session_id for m in members.admins()] == [SID_B]
    assert members.get(SessionID("05" + "ee" * 32)) is None
    assert len(members.unparsed) == 3 and members.extra == {b"X": 7}
    assert members_data(members) == data


def test_members_odd_values_read_as_absent() -> None:
    member = parse_members({b"m": {SID_A.raw: {b"n": 3, b"I": 9, b"R": b"1", b"A": 0}}}).members[0]
    assert member.name == "" and member.invite is None and member.removal is None
    assert not member.admin and parse_members({b"m": 5}).extra == {b"m": 5}


def test_risk17_unknown_member_keys_survive_an_admin_edit() -> None:
    # A newer client's per-member field (its bt key is unknown to us, §2.2) and a future
    # top-level key must both come back unchanged after we rename a member.
    data: dict[bytes, BValue] = {
        b"m": {SID_A.raw: {b"n": b"Alice", b"T": 1_760_000_000, b"zz": [1, 2]}},
        b"future": b"x",
    }
    first = config.parse_message(
        config.next_message(config.empty_message(), data, GROUP_SK), GROUP_PK
    )
    members = parse_members(first.data)
    alice = members.members[0]
    renamed = Members(
        (dataclasses.replace(alice, name="Alicia"),), members.unparsed, members.extra
    )
    raw = config.next_message(first, members_data(renamed), GROUP_SK)
    [blob] = config.seal_message(raw, ENC_KEY, config.MEMBERS_DOMAIN)
    result = config.read_blobs(
        [("h", blob)],
        [ENC_KEY],
        config.MEMBERS_DOMAIN,
        GROUP_PK,
        config.ConfigState(first),
        multipart.Assembler(),
        0,
    )
    entries = result.state.data[b"m"]
    assert isinstance(entries, dict)
    entry = entries[SID_A.raw]
    assert entry == {b"n": b"Alicia", b"T": 1_760_000_000, b"zz": [1, 2]}
    assert result.state.data[b"future"] == b"x"
    assert result.state.message.diff == {b"m": {SID_A.raw: {b"n": b""}}}


# ---------------------------------------------------------------------------------- properties

texts = st.text(max_size=120)
pictures = st.none() | st.builds(
    Picture, st.text(min_size=1, max_size=50), st.binary(min_size=32, max_size=32)
)
positive = st.none() | st.integers(min_value=1, max_value=9_999_999_999)


@given(
    texts, st.text(max_size=300), pictures, positive, positive, positive, positive, st.booleans()
)
def test_info_round_trip(
    name: str,
    desc: str,
    picture: Picture | None,
    e: int | None,
    d: int | None,
    dd: int | None,
    c: int | None,
    destroyed: bool,
) -> None:
    info = Info(name, desc, picture, e, d, dd, c, destroyed)
    data = info_data(info)
    assert normalize(data) == data
    again = parse_info(data)
    assert again.name == name.encode()[:100].decode("utf-8", "ignore")
    assert (again.picture, again.disappearing_timer, again.created) == (picture, e, c)
    assert info_data(again) == data


members_st = st.builds(
    Member,
    st.binary(min_size=32, max_size=32).map(lambda k: SessionID.from_key(k)),
    texts,
    pictures,
    st.booleans(),
    st.none() | st.sampled_from(SendStatus),
    st.none() | st.sampled_from(SendStatus),
    st.booleans(),
    st.none() | st.sampled_from(Removal),
    st.dictionaries(
        st.sampled_from([b"T", b"x", b"zz"]), st.integers(0, 9) | st.binary(max_size=3)
    ),
)


@given(st.lists(members_st, max_size=6, unique_by=lambda m: m.session_id))
def test_members_round_trip(members: list[Member]) -> None:
    data = members_data(Members(tuple(members)))
    parsed = parse_members(data)
    assert members_data(parsed) == data
    assert {m.session_id for m in parsed} == {m.session_id for m in members}
    for original in members:
        got = parsed.get(original.session_id)
        assert got is not None
        assert got.status is original.status
        assert got.extra == original.extra and got.removal == original.removal

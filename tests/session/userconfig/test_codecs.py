"""User configs (docs/user-configs.md): known answers, views, merging, writer state."""

from __future__ import annotations

import pytest

from bridge.session.groups import config, config_crypto, multipart
from bridge.session.groups.user_config_wrap import wrap_user_config
from bridge.session.onetoone import MessageKeys
from bridge.session.userconfig import state as st
from bridge.session.userconfig import views
from bridge.session.userconfig.merge import merge, non_redundant

# libsession-util tests/test_config_userprofile.cpp ("user profile C API"): the account seed,
# its first UserProfile push (seqno 1: name "Kallie" and a picture) and that push encrypted.
SEED = bytes.fromhex("0123456789abcdef0123456789abcdef" + "00" * 16)
HASH0 = bytes.fromhex("ea173b57beca8af18c3519a7bbf69c3e7a05d1c049fa9558341d8ebb48b0c965")
PUSH1 = (
    b"d1:#i1e1:&d1:n6:Kallie1:p34:http://example.org/omg-pic-123.bmp"
    b"1:q32:secret78901234567890123456789012e1:<ll"
    b"i0e32:" + HASH0 + b"deee1:=d1:n0:1:p0:1:q0:ee"
)
PUSH1_ENCRYPTED = bytes.fromhex(
    "877c8e0f5d33f5fffa5a4e162785a9a89918e95de1c4b925201f1f5c29d9ee4f8c36e2b278fce1e6"
    "b9d999689dd86ff8e79e0a04004fa54d24da89bc2604cb1df8c1356da8f14710543ecec44f2d57fc"
    "56ea8b7e73d119c69d755f4d513d5d069f02396b8ec0cbed894169836f57ca4b782ce705895c593b"
    "4230d50c175d44a08045388d3f4160bacb617b9ae8de3ebc8d9024245cd09ce102627cab2acf1b91"
    "26159211359606611ca5814de320d1a7099a65c99b0eebbefb92a115f5efa6b9132809300ac010c6"
    "857cfbd62af71b0fa97eccec75cb95e67edf40b35fdb9cad125a6976693ab085c6bba96a2e51826e"
    "81e16b9ec1232af5680f2ced55310486"
)
KEYS = MessageKeys.from_seed(SEED)
PIC_KEY = b"secret78901234567890123456789012"
PEER = "05" + "ab" * 32
GROUP = "03" + "cd" * 32


def _profile_data(name: str, url: str, key: bytes) -> dict[bytes, object]:
    return {b"n": name.encode(), b"p": url.encode(), b"q": key}


def test_upstream_user_profile_push_is_reproduced_byte_for_byte() -> None:
    empty = config.empty_message()
    assert empty.hash == HASH0
    bt = config.next_message(
        empty, _profile_data("Kallie", "http://example.org/omg-pic-123.bmp", PIC_KEY), None
    )  # type: ignore[arg-type]
    assert bt == PUSH1
    # Key base = the account's Ed25519 seed, domain "UserProfile" (docs/groups-v2.md §1.8).
    encrypted = config.seal_message(bt, SEED, b"UserProfile")
    assert encrypted == [PUSH1_ENCRYPTED]
    plain = config_crypto.decrypt(PUSH1_ENCRYPTED, SEED, b"UserProfile")
    assert config_crypto.unpad(plain) == PUSH1
    with pytest.raises(config_crypto.ConfigCryptoError):
        config_crypto.decrypt(PUSH1_ENCRYPTED, SEED, b"Contacts")


def test_reader_opens_the_upstream_push_wrapped_and_bare() -> None:
    state = st.UserConfigState(views.USER_PROFILE)
    wrapped = wrap_user_config(KEYS, 2, 1, PUSH1_ENCRYPTED)
    for data in (wrapped, PUSH1_ENCRYPTED):
        out = st.absorb(state, [("h1", data)], KEYS, multipart.Assembler(), 0)
        assert out.changed and not out.rejected and not out.state.dirty
        profile = views.user_profile(out.state.data)
        assert profile.name == "Kallie"
        assert profile.picture_url == "http://example.org/omg-pic-123.bmp"
        assert profile.picture_key == PIC_KEY
        assert out.state.hashes == {"h1"}


def test_upstream_conflict_resolves_like_libsession() -> None:
    """Same test: both clients edit seqno 1; the merge keeps "Nibbler" (the higher hash) and
    the picture only the second client set, at seqno 3, on both sides."""
    push1 = config.parse_message(PUSH1, None)
    nibbler = {**push1.data, b"n": b"Nibbler"}
    raz = _profile_data("Raz", "http://new.example.com/pic", b"qwert\0yuio1234567890123456789012")
    a = config.parse_message(config.next_message(push1, nibbler, None), None)
    b = config.parse_message(config.next_message(push1, raz, None), None)  # type: ignore[arg-type]
    assert a.seqno == b.seqno == 2
    for ours, theirs in ((a, b), (b, a)):
        outcome = merge([ours, theirs])
        assert outcome.merged is not None
        merged = config.parse_message(outcome.merged, None)
        assert merged.seqno == 3
        profile = views.user_profile(merged.data)
        assert profile.name == "Nibbler"
        assert profile.picture_url == "http://new.example.com/pic"
        assert profile.picture_key is not None
        assert profile.picture_key.hex() == (
            "7177657274007975696f31323334353637383930313233343536373839303132"
        )
    # Deterministic: both sides produce the same bytes.
    assert merge([a, b]).merged == merge([b, a]).merged


def test_a_newer_message_that_lists_ours_is_adopted_without_a_push() -> None:
    push1 = config.parse_message(PUSH1, None)
    newer = config.parse_message(config.next_message(push1, {b"n": b"X"}, None), None)
    assert non_redundant([push1, newer]) == [newer]
    outcome = merge([push1, newer])
    assert outcome.merged is None and outcome.adopted is newer


def _sealed(message_bt: bytes, ns: int) -> bytes:
    blob = config.seal_message(message_bt, SEED, views.DOMAINS[ns])[0]
    return wrap_user_config(KEYS, ns, config.parse_message(message_bt, None).seqno, blob)


def test_writer_edit_push_and_concurrent_phone_edit() -> None:
    state = st.UserConfigState(views.CONTACTS)
    # The phone wrote a contact list with one blocked contact.
    phone1 = config.next_message(
        config.empty_message(), views.set_contact({}, PEER, blocked=True, name="Spam"), None
    )
    state = st.absorb(state, [("p1", _sealed(phone1, 3))], KEYS, multipart.Assembler(), 0).state
    assert views.contacts(state.data)[PEER].blocked
    # The bridge approves another contact: seqno 2, dirty, the phone's hash obsolete.
    other = "05" + "11" * 32
    state = st.edit(state, views.set_contact(state.data, other, approved=True, created=5))
    assert state.dirty and state.message.seqno == 2 and state.obsolete == {"p1"}
    parts = st.seal(state, KEYS)
    state = st.deleted(st.pushed(state, ["b2"]), ["p1"])
    assert not state.dirty and state.hashes == {"b2"} and not state.obsolete
    # Meanwhile the phone (still at seqno 1) unblocked PEER: seqno 2 too -> merge to 3.
    phone_msg = config.parse_message(phone1, None)
    phone2 = config.next_message(
        phone_msg, views.set_contact(phone_msg.data, PEER, blocked=False), None
    )
    out = st.absorb(
        state, [("b2", parts[0]), ("p2", _sealed(phone2, 3))], KEYS, multipart.Assembler(), 0
    )
    assert out.changed and out.state.dirty and out.state.message.seqno == 3
    merged = views.contacts(out.state.data)
    assert not merged[PEER].blocked and merged[other].approved and merged[other].created == 5
    assert out.state.obsolete == {"b2", "p2"}


def test_edit_without_change_is_a_no_op_and_state_round_trips() -> None:
    state = st.edit(
        st.UserConfigState(views.USER_GROUPS),
        views.set_group({}, GROUP, name="G", joined=7, auth_data=b"\x01" * 100),
    )
    assert st.edit(state, state.data) is state
    again = st.UserConfigState.loads(views.USER_GROUPS, state.dumps())
    assert again == state
    assert st.UserConfigState.loads(5, "garbage") == st.UserConfigState(5)
    (group,) = views.groups_joined(again.data)
    assert group.group_id == GROUP and group.name == "G" and group.joined == 7
    assert group.secret_key is None and group.auth_data == b"\x01" * 100


def test_views_convo_reads_never_go_backwards() -> None:
    data = views.set_read({}, b"1", PEER, 1000)
    data = views.set_read(data, b"1", PEER, 500)
    assert views.one_to_one_reads(data)[PEER].last_read == 1000
    data = views.set_read(data, b"g", GROUP, 9)
    assert views.group_reads(data)[GROUP].last_read == 9
    community = {b"o": {b"https://x": {b"#": b"k" * 32, b"R": {b"room": {b"r": 3}}}}}
    assert views.community_reads(community)[("https://x", "room")].last_read == 3


def test_profile_view_needs_both_url_and_key() -> None:
    assert views.user_profile({b"n": b"A", b"p": b"http://u"}).picture_url is None
    assert views.user_profile({}).empty
    data = views.set_user_profile({b"x": 1}, "B", ("http://u", b"k" * 32), 99)
    view = views.user_profile(data)
    assert (view.name, view.picture_url, view.updated, data[b"x"]) == ("B", "http://u", 99, 1)


def test_garbage_and_other_accounts_configs_are_rejected() -> None:
    other = MessageKeys.from_seed(b"\x07" * 32)
    blob = config.seal_message(PUSH1, b"\x07" * 32, b"UserProfile")[0]
    foreign = wrap_user_config(other, 2, 1, blob)
    out = st.absorb(
        st.UserConfigState(2), [("x", foreign), ("y", b"junk")], KEYS, multipart.Assembler(), 0
    )
    assert not out.changed and {r.storage_hash for r in out.rejected} == {"x", "y"}

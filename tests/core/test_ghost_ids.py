"""Pure parts of the ghost module: ghost ids, image types, profile conversion."""

from __future__ import annotations

import secrets

import pytest

from bridge.core.ghosts import GhostProfile, ghost_mxid, ghost_session_id, image_mime_type
from bridge.ids import InvalidId
from bridge.session.messages import Profile
from tests.images import tiny_png

DOMAIN = "example.test"
ALICE = "05" + "a1" * 32


@pytest.mark.parametrize("prefix", ["05", "15", "25"])
def test_mxid_and_session_id_are_inverse(prefix: str) -> None:
    session_id = prefix + secrets.token_hex(32)
    mxid = ghost_mxid("session_{userid}", DOMAIN, session_id.upper())
    assert mxid == f"@session_{session_id}:{DOMAIN}"
    assert ghost_session_id("session_{userid}", DOMAIN, mxid) == session_id


def test_template_with_a_suffix() -> None:
    template = "sess_{userid}_bridge"
    mxid = ghost_mxid(template, DOMAIN, ALICE)
    assert mxid == f"@sess_{ALICE}_bridge:{DOMAIN}"
    assert ghost_session_id(template, DOMAIN, mxid) == ALICE
    assert ghost_session_id(template, DOMAIN, f"@sess_{ALICE}:{DOMAIN}") is None
    assert ghost_session_id(template, DOMAIN, f"@sess_{ALICE}_bridgex:{DOMAIN}") is None


@pytest.mark.parametrize(
    "mxid",
    [
        f"@session_{ALICE}:other.test",  # another server
        f"@session_{ALICE.upper()}:{DOMAIN}",  # not the canonical spelling
        f"@session_{ALICE}0:{DOMAIN}",  # too long
        f"@session_{ALICE[:-1]}:{DOMAIN}",  # too short
        f"@session_03{'c' * 64}:{DOMAIN}",  # a group id
        f"@session_05{'g' * 64}:{DOMAIN}",  # not hex
        f"@sessionbot:{DOMAIN}",
        f"@alice:{DOMAIN}",
        "not an mxid",
    ],
)
def test_session_id_for_refuses_what_is_not_a_ghost(mxid: str) -> None:
    assert ghost_session_id("session_{userid}", DOMAIN, mxid) is None


@pytest.mark.parametrize("bad", ["03" + "c" * 64, "05" + "a" * 63, "05" + "z" * 64, ""])
def test_mxid_for_refuses_bad_ids(bad: str) -> None:
    with pytest.raises(InvalidId):
        ghost_mxid("session_{userid}", DOMAIN, bad)


@pytest.mark.parametrize(
    ("data", "mime"),
    [(tiny_png(), "image/png"), (b"\xff\xd8\xff\xe0", "image/jpeg"), (b"<html>", None)],
)
def test_image_types_are_sniffed(data: bytes, mime: str | None) -> None:
    assert image_mime_type(data) == mime


def test_session_profile_converts() -> None:
    key = secrets.token_bytes(32)
    profile = Profile(display_name="Alice", avatar_url="http://f/file/1", avatar_key=key)
    assert GhostProfile.from_session(profile) == GhostProfile("Alice", "http://f/file/1", key)
    assert GhostProfile.from_session(None) is None
    assert key.hex() not in repr(GhostProfile.from_session(profile))

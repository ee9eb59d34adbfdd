"""``export contacts``: the document and text made from a login's contacts (pure)."""

from __future__ import annotations

from bridge.core.contacts_export import contacts_document, contacts_text
from bridge.session.userconfig.views import Contact, JoinedGroup

ME = "05" + "aa" * 32
CAROL = "05" + "c4" * 32
DAN = "05" + "d4" * 32
EVE = "05" + "ee" * 32
GROUP = "03" + "11" * 32


def contact(sid: str, name: str, *, blocked: bool = False, nick: str | None = None) -> Contact:
    return Contact(sid, name, nick, None, None, True, True, blocked, 0, 0)


def group(gid: str, name: str, *, invited: bool = False, removed: int = 0) -> JoinedGroup:
    return JoinedGroup(gid, None, None, name, 0, invited, removed, 0)


def test_moved_contacts_name_their_matrix_account() -> None:
    contacts = {
        CAROL: contact(CAROL, "Carol"),
        DAN: contact(DAN, "Dan", nick="Danny"),
        EVE: contact(EVE, "Eve", blocked=True),
    }
    groups = [group(GROUP, "Hikers"), group("03" + "22" * 32, "Old", removed=1)]
    owners = {CAROL: "@carol:hs.example"}
    doc = contacts_document(ME, contacts, groups, owners.get, 1_800_000_000_000)
    assert doc["session_id"] == ME
    assert doc["exported_at"] == "2027-01-15T08:00:00+00:00"
    assert doc["contacts"] == [
        {"session_id": CAROL, "name": "Carol", "matrix_id": "@carol:hs.example"},
        {"session_id": DAN, "name": "Danny", "matrix_id": None},
    ]  # blocked contacts left out
    assert doc["groups"] == [{"group_id": GROUP, "name": "Hikers"}]  # not the one left
    text = contacts_text(doc)
    assert "1 of 2 contacts are on Matrix." in text
    assert "On Matrix:\n  Carol: @carol:hs.example\n" in text
    assert f"Still only on Session:\n  Danny: {DAN}\n" in text
    assert f"Groups:\n  Hikers: {GROUP}\n" in text

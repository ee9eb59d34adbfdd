"""What a link changes in a group portal (docs/migration.md §2): real Synapse, the database of
the run, the devnet's group swarms. The group is run by the devnet's test admin; the bridge is
in it through a login; Sam is an independent Session member (the project's own member client
and 1:1 client under his identity), who writes in the group and then proves from his 1:1
client that a Matrix account is his.

After the link: the Matrix account is invited to the group's room, Sam's ghost keeps the
history with the moved suffix, a mention of Sam's Session ID on Session becomes a pill of the
Matrix account, and `who` counts him as moved (linked)."""

from __future__ import annotations

import re

import pytest

from bridge.db.repos.links import IdentityKind, LinkRepo
from bridge.session.groups.events import GroupInviteEvent
from bridge.session.messages import VisibleMessage
from tests.integration.conftest import DmEnv, MatrixUsers, messages_from, wait_for
from tests.integration.helpers import bot_says, matrix_sees, open_management_room
from tests.integration.test_group_portals import joined_group
from tests.sessionnet.group_world import Member, new_member

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 30.0
CODE = r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b"


async def test_a_link_in_a_group_portal_invites_renames_pills_and_counts(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    app = dm_env.app
    bot, bot_sid = app.config.bot_mxid, (await app.logins.bot_login()).session_id
    alice, _login, admin, room_id = await joined_group(dm_env, matrix_users, "Hikers")
    group = admin.group_id.value
    sam = await new_member(dm_env.world, "Sam")
    sid = sam.identity.session_id.value
    try:
        await admin.invite(sam.identity.session_id, "Sam")
        await sam.inbox.wait(GroupInviteEvent, timeout=TIMEOUT)
        await sam.groups.accept(group)
        await sam.groups.send_text(group, "hello from Sam")
        await matrix_sees(alice, room_id, "^hello from Sam$")
        ghost = app.ghosts.mxid_for(sid)
        # Alice writes from Matrix (as her login): she is on Matrix, not "still on Session".
        await alice.send_text(room_id, "hello from Alice")
        await wait_for(lambda: _received(sam, "hello from Alice"), "Sam to get it", TIMEOUT)

        await alice.send_text(room_id, "!session who")
        before = await bot_says(alice, room_id, bot, r"Still on Session \(\d+\)")
        assert "Still on Session (1)" in before and "(linked)" not in before

        # Bob proves that Sam's Session ID is his: the code sent from Sam's own 1:1 client.
        bob = await matrix_users.new("bob")
        management = await open_management_room(bob, bot)
        await bob.send_text(management, f"link {sid}")
        found = re.search(CODE, await bot_says(bob, management, bot, "To prove"))
        assert found is not None
        await sam.dm.send_text(bot_sid, found.group(1))
        done = await bot_says(bob, management, bot, "Linked: Session ID")
        assert sid in done
        owner = await LinkRepo(app.db).owner_of(sid)
        assert owner is not None and (owner.mxid, owner.kind) == (str(bob.mxid), IdentityKind.LINK)

        # Bob is invited to the group's room, where Sam wrote.
        async def joined() -> bool:
            try:
                await bob.join_room(room_id)
            except Exception:
                return False
            return True

        await wait_for(joined, "bob to be invited to the group portal and join", TIMEOUT)

        # Sam's ghost keeps the history and shows that he moved.
        async def renamed() -> str | None:
            members = await alice.get_joined_members(room_id)
            member = members.get(ghost)  # type: ignore[call-overload]
            name = None if member is None else str(member.displayname or "")
            return name if name and name.endswith(" (on Matrix)") else None

        name = await wait_for(renamed, "Sam's ghost to show that he moved", TIMEOUT)
        assert name.startswith("Sam")
        first = await matrix_sees(alice, room_id, "^hello from Sam$")
        assert str(first.sender) == ghost

        # The admin mentions Sam's Session ID on Session: the pill names Bob.
        await admin.post(VisibleMessage(body=f"welcome back @{sid}"))
        mention = await matrix_sees(alice, room_id, "^welcome back")
        formatted = mention.content.formatted_body or ""
        assert str(bob.mxid) in formatted and ghost not in formatted

        # `who` counts Sam as moved: Bob, linked.
        await alice.send_text(room_id, "!session who")

        async def counted() -> str | None:
            bodies = await messages_from(alice, str(room_id), bot)
            answers = [b for b in bodies if "Still on Session (" in b]
            return answers[-1] if len(answers) >= 2 else None

        after = await wait_for(counted, "`who` to count Sam as moved", TIMEOUT)
        assert f"{bob.mxid} (linked)" in after
        # Still on Session: the admin only (who wrote the mention), no longer Sam.
        assert "Still on Session (1)" in after and sid[:10] not in after
        assert _moved(after) == _moved(before) + 1
    finally:
        await sam.groups.stop()


async def _received(member: Member, body: str) -> bool:
    return body in member.inbox.bodies()


def _moved(answer: str) -> int:
    found = re.search(r"Moved to Matrix \((\d+)\)", answer)
    assert found is not None, answer
    return int(found.group(1))

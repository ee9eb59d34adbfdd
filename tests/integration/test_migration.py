"""The migration tools in a community portal: what a link changes (invite, ghost name, pills),
`who` and its state event, the admins' `migration`, and `export` (the JSON schema-checked, the
HTML parsed). Real Synapse, SQLite and PostgreSQL, the devnet's storage nodes (the code is
sent from the linked Session account) and its community server."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mautrix.client import Client
from mautrix.types import ContentURI, EventType, RoomID

from bridge.config import Config
from bridge.core.pills import LinkedIds
from bridge.db.repos.links import LinkRepo
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import CommunityDevnet, DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bot_says, bridged_room, matrix_sees, open_management_room
from tests.sessionnet.dm_setup import Inbox

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 20.0
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/export.schema.json").read_text())
STATE = EventType("network.session.migration", EventType.Class.STATE)


@pytest.fixture
def fast_communities(bridge_config: Config) -> None:
    bridge_config.session.community_poll_interval = 0.2
    bridge_config.migration.topic_counts = True


async def topic_of(user: Client, room_id: RoomID) -> str:
    content = await user.get_state_event(room_id, EventType.ROOM_TOPIC)
    return str(content.serialize().get("topic") or "")


async def counts(user: Client, room_id: RoomID) -> dict[str, Any]:
    content = await user.get_state_event(room_id, STATE)
    return dict(content.serialize())


async def bot_files(user: Client, room_id: RoomID, bot: str) -> dict[str, bytes]:
    async def find() -> dict[str, bytes] | None:
        files = {
            e.content.body: e.content.url
            for e in await room_events(user, str(room_id))
            if str(e.sender) == bot and str(getattr(e.content, "msgtype", "")) == "m.file"
        }
        if len(files) < 2:
            return None
        return {name: await user.download_media(ContentURI(url)) for name, url in files.items()}

    return await wait_for(find, "the two export files", TIMEOUT)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_link_who_migration_and_export_in_a_community(
    fast_communities: None,
    dm_env: DmEnv,
    devnet: CommunityDevnet,
    matrix_users: MatrixUsers,
) -> None:
    app = dm_env.app
    bot, bot_sid = app.config.bot_mxid, (await app.logins.bot_login()).session_id
    alice = await matrix_users.new("alice")
    app.config.bridge.permissions[str(alice.mxid)] = "admin"
    room_id = await bridged_room(alice, bot, devnet.url)
    portal = await app.repos.portals.get_by_mxid(str(room_id))
    assert portal is not None

    # Sam and Tom write in the community; Sam's identity will also write to the bot.
    identity = Identity.generate()
    sam, room = CommunityClient.from_url(devnet.http, identity, devnet.url)
    await sam.join(room)
    tom = await devnet.member()
    await sam.post(room, VisibleMessage(body="hello from Sam <b>&", profile=None))
    await tom.post(room, VisibleMessage(body="hi from Tom", profile=None))
    await matrix_sees(alice, room_id, "^hi from Tom$")
    await alice.send_text(room_id, "!session who")
    await bot_says(alice, room_id, bot, r"Still on Session \(2\)")
    assert await counts(alice, room_id) == {
        "moved": 1,
        "on_session": 2,
        "unknown": 0,
        "updated_at": (await counts(alice, room_id))["updated_at"],
    }
    # migration.topic_counts: the topic's last line (the community's description kept above).
    assert (await topic_of(alice, room_id)).endswith("Moved to Matrix: 1 of 3 people")

    # Bob links Sam's Session ID, the code sent from Sam's own Session account.
    bob = await matrix_users.new("bob")
    management = await open_management_room(bob, bot)
    inbox = Inbox()
    sam_dm = await dm_env.world.client(identity, inbox=inbox)
    await bob.send_text(management, f"link {identity.session_id.value}")
    code = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", await bot_says(bob, management, bot, "To prove"))
    assert code is not None
    await sam_dm.send_text(bot_sid, code.group(0))
    await bot_says(bob, management, bot, "Linked: Session ID")

    # Bob is invited to the portal where Sam wrote; Sam's ghost shows that he moved.
    async def joined() -> bool:
        try:
            await bob.join_room(room_id)
        except Exception:
            return False
        return True

    await wait_for(joined, "bob to be invited and join", TIMEOUT)
    authors = await LinkRepo(app.db).last_written(portal.id)
    key = bytes.fromhex(devnet.servers.community.pubkey_hex)
    [blinded] = set(authors) & LinkedIds().blinded_ids(identity.session_id.value, key)

    async def renamed() -> bool:  # after the invites
        ghost = await app.repos.ghosts.get(blinded)
        return ghost is not None and (ghost.displayname or "").endswith(" (on Matrix)")

    await wait_for(renamed, "Sam's ghost to show that he moved", TIMEOUT)

    # Tom mentions Sam by his blinded id: the pill names Bob.
    await tom.post(room, VisibleMessage(body=f"thanks @{blinded}", profile=None))
    mention = await matrix_sees(alice, room_id, "^thanks")
    assert str(bob.mxid) in (mention.content.formatted_body or "")

    await alice.send_text(room_id, "!session who")
    answer = await bot_says(alice, room_id, bot, r"Still on Session \(1\)")
    assert f"{bob.mxid} (linked)" in answer
    state = await counts(alice, room_id)
    assert (state["moved"], state["on_session"]) == (2, 1)
    topic = await topic_of(alice, room_id)
    assert topic.endswith("Moved to Matrix: 2 of 3 people") and "1 of 3" not in topic

    admin_room = await open_management_room(alice, bot)
    await alice.send_text(admin_room, "migration")
    overview = await bot_says(alice, admin_room, bot, "Logins: ")
    assert "2 moved, 1 on Session" in overview and "links: 1" in overview
    assert "(no count from a week ago yet)" in overview  # the trend needs a week of counts

    # export: the JSON follows the schema and names Bob as Sam; the HTML is self-contained.
    await alice.send_text(room_id, "!session export")
    files = await bot_files(alice, room_id, bot)
    [archive] = [json.loads(v) for k, v in files.items() if k.endswith(".json")]
    jsonschema.validate(archive, SCHEMA)
    by_key = {a["key"]: a for a in archive["authors"]}
    assert by_key[blinded]["matrix_id"] == str(bob.mxid)
    bodies = [m["body"] for m in archive["messages"]]
    assert "hello from Sam <b>&" in bodies and "hi from Tom" in bodies
    [page] = [v.decode() for k, v in files.items() if k.endswith(".html")]
    parser = Page()
    parser.feed(page)
    assert "script" not in parser.tags and parser.links == []
    assert "hello from Sam <b>&" in "".join(parser.text)
    assert "b" not in parser.tags  # the <b> in Sam's text stayed text

"""Devnet set-up for groups v2 tests and benchmarks: an admin helper plus member clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.session.client import SessionClient
from bridge.session.groups.events import GroupEvent, GroupMessageEvent
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.store import GroupStore, MemoryGroupStore
from bridge.session.keys import Identity
from bridge.session.messages import Profile, VisibleMessage
from tests.sessionnet.dm_setup import DmWorld
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.helpers import wait_for


@dataclass
class GroupInbox:
    """Collects the group events delivered to one :class:`GroupsClient`."""

    events: list[GroupEvent] = field(default_factory=list)

    async def __call__(self, event: GroupEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        """The events of one class."""
        return [e for e in self.events if isinstance(e, kind)]

    def bodies(self) -> list[str | None]:
        """Bodies of the visible messages, in delivery order."""
        return [
            e.content.body
            for e in self.of(GroupMessageEvent)
            if isinstance(e.content, VisibleMessage)
        ]

    async def wait(self, kind: type[Any], n: int = 1, timeout: float = 10) -> list[Any]:
        """Wait until ``n`` events of ``kind`` arrived; return them."""
        await wait_for(lambda: len(self.of(kind)) >= n, timeout=timeout)
        return self.of(kind)


@dataclass
class Member:
    """A member account: its 1:1 client, its groups client and what they received."""

    identity: Identity
    dm: SessionClient
    groups: GroupsClient
    inbox: GroupInbox
    store: GroupStore


async def new_admin(world: DmWorld, name: str = "Devnet group") -> DevnetGroupAdmin:
    """A new group and its admin (whose 1:1 client only sends)."""
    identity = Identity.generate()
    dm = await world.client(identity, start=False, profile=Profile("Admin"))
    return await DevnetGroupAdmin.create(world.snode, dm, identity, name)


async def new_member(
    world: DmWorld, name: str, *, store: GroupStore | None = None, identity: Identity | None = None
) -> Member:
    """A started member: 1:1 client (receives invites) and fast-polling groups client."""
    identity = identity or Identity.generate()
    dm = await world.client(identity, profile=Profile(name))
    store = store if store is not None else MemoryGroupStore()
    groups = GroupsClient(identity, world.snode, store, dm=dm, poll_interval=0.05)
    inbox = GroupInbox()
    groups.subscribe(inbox)
    await groups.start()
    return Member(identity, dm, groups, inbox, store)

"""The composition of bridge-made Session identities (docs/migration.md §7), kept out of
bridge/app.py: :func:`build_made_ids` wires the service, its profiles, the group part and the
hooks of the community and group kinds; :meth:`MadeIdsWiring.start` loads the stored
identities and starts their group clients (after the group kind started)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mautrix.appservice import IntentAPI
from mautrix.types import Membership, MemberStateEventContent, StateEvent, UserID

from bridge.commands.identities import IdentityCommandDeps, identity_commands
from bridge.commands.registry import Command
from bridge.config import Config
from bridge.core.community.actors import CommunityActors
from bridge.core.group.actors import GroupActors
from bridge.core.group.clients import GroupClients, SessionClientOf
from bridge.core.group.made_ids import MadeGroups
from bridge.core.group.members import GroupMembers
from bridge.core.logins import LoginManager
from bridge.core.made_ids import MadeIdentities, MadeIdentity, MadeSettings
from bridge.core.made_ids_profile import MadeProfiles
from bridge.core.made_ids_send import MadeSender
from bridge.core.pills import LinkedIds
from bridge.core.portal.rooms import PortalRooms
from bridge.core.secrets import SeedVault, parse_secrets_key
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.links import LinkRepo
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.users import UserRepo
from bridge.matrix.reads import media_download
from bridge.matrix.send import send_notice
from bridge.session.dm_media import FileTransfer
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.app_made_ids")


@dataclass
class MadeIdsWiring:
    made: MadeIdentities
    profiles: MadeProfiles
    groups: MadeGroups
    commands: list[Command]
    linked: LinkedIds

    async def start(self) -> None:
        """Load the stored identities; run the group client of each (its groups polled)."""
        for made in await self.made.load_all():
            self.linked.add(made.session_id, made.mxid)  # mentions of it name its user
            try:
                await self.groups.start(made)
            except Exception:
                log.exception("The group client of bridge-made %s did not start", made.mxid)

    async def on_member(self, event: StateEvent) -> None:
        """A member event in a portal: when it is a user with a made identity changing their
        own profile, their identity's Session profile is published again if it changed."""
        content = event.content
        if str(event.state_key) != str(event.sender) or not isinstance(
            content, MemberStateEventContent
        ):
            return
        if content.membership != Membership.JOIN:
            return
        made = self.made.of(str(event.sender))
        if made is not None:
            await self.profiles.refresh(made)


def build_made_ids(
    *,
    config: Config,
    bot: IntentAPI,
    users: UserRepo,
    links: LinkRepo,
    kv: KVRepo,
    portals: PortalRepo,
    rooms: PortalRooms,
    logins: LoginManager,
    snode: SnodeClient,
    files: FileTransfer,
    community_actors: CommunityActors,
    group_actors: GroupActors,
    group_clients: GroupClients,
    group_members: GroupMembers,
    session_client: SessionClientOf,
    linked: LinkedIds,
) -> MadeIdsWiring:
    migration = config.migration

    async def has_login(mxid: str) -> bool:
        return bool(await logins.logins_of(mxid))

    made = MadeIdentities(
        users=users,
        links=links,
        kv=kv,
        vault=SeedVault(parse_secrets_key(config.bridge.secrets_key)),
        settings=MadeSettings(migration.made_identities, migration.made_identity_name),
        has_login=has_login,
    )

    async def read_profile(mxid: str) -> tuple[str | None, str | None]:
        try:
            profile = await bot.get_profile(UserID(mxid))
        except Exception as e:
            log.info("The Matrix profile of %s was not read: %s", mxid, e)
            return None, None
        return profile.displayname or None, str(profile.avatar_url or "") or None

    profiles = MadeProfiles(
        kv=kv,
        snode=snode,
        files=files,
        read_profile=read_profile,
        download=media_download(bot),
        name_template=migration.made_identity_name,
    )
    groups = MadeGroups(clients=group_clients, snode=snode, session_client=session_client)

    async def notify(room_id: str, markdown: str) -> None:
        await send_notice(bot, room_id, markdown)

    sender = MadeSender(made=made, profiles=profiles, groups=groups, notify=notify)
    community_actors.made = sender
    group_members.made_ids = lambda: {m.session_id: m.mxid for m in made.all()}
    group_actors.made = sender

    async def created(identity: MadeIdentity) -> None:
        linked.add(identity.session_id, identity.mxid)

    async def deleted(identity: MadeIdentity) -> None:
        linked.remove(identity.session_id)
        await groups.stop(identity)
        await profiles.forget(identity)

    async def denied(portal: PortalRecord) -> int:
        """`identities deny` in a group portal: its made identities leave the group."""
        if portal.kind is not PortalKind.GROUP:
            return 0
        left = 0
        for identity in made.all():
            try:
                left += await groups.leave(identity, portal.session_key)
            except Exception as e:  # it stays a member, unused here: logged
                log.warning("Bridge-made %s did not leave: %s", identity.session_id[:10], e)
        return left

    made.on_created, made.on_deleted = created, deleted
    commands = identity_commands(
        IdentityCommandDeps(
            made=made,
            portals=portals,
            publish=profiles.publish,
            is_room_admin=rooms.is_room_admin,
            on_denied=denied,
        )
    )
    return MadeIdsWiring(made, profiles, groups, commands, linked)

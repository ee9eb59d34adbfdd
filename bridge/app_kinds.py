"""The conversation kinds built and bound to each other, for bridge/app.py (with it, the one
place that builds kinds, docs/architecture.md §3): the direct chats first, whose storage
client and 1:1 clients the communities and groups ride on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mautrix.appservice import IntentAPI
from mautrix.types import UserID

from bridge.app_groups import account_groups, group_command_list
from bridge.app_made_ids import MadeIdsWiring, build_made_ids
from bridge.commands.portals import PortalCommandDeps
from bridge.commands.registry import Command
from bridge.config import Config
from bridge.core.community.wiring import CommunityKind, build_community
from bridge.core.direct.legacy_groups import LegacyGroupNotices
from bridge.core.direct.wiring import DirectKind, build_direct
from bridge.core.downloads import GuardedFiles
from bridge.core.group.wiring import GroupKind, build_group
from bridge.core.logins import LoginManager
from bridge.core.pills import LinkedIds
from bridge.core.portal.kind import ConversationKind, PortalDeps
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalKind
from bridge.db.repos import Repositories
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.links import LinkRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.client import SessionClient
from bridge.session.files import FileServerClient

__all__ = ["Kinds", "build_kinds", "portal_rooms"]


@dataclass
class Kinds:
    community: CommunityKind
    direct: DirectKind
    group: GroupKind

    @property
    def all(self) -> list[ConversationKind]:
        """In start order: the group clients ride on the 1:1 clients the direct kind runs."""
        return [self.community, self.direct, self.group]

    def session_client(self, session_id: str) -> SessionClient | None:
        """The running 1:1 client of ``session_id``, if any."""
        return (self.direct.accounts.get(session_id) or (None, None))[1]

    def made_ids(
        self,
        *,
        config: Config,
        bot: IntentAPI,
        repos: Repositories,
        links: LinkRepo,
        rooms: PortalRooms,
        logins: LoginManager,
        files: FileServerClient,
        linked: LinkedIds,
    ) -> MadeIdsWiring:
        """Bridge-made identities (docs/migration.md §7) over the kinds' actors and clients."""
        return build_made_ids(
            config=config,
            bot=bot,
            users=repos.users,
            links=links,
            kv=repos.kv,
            portals=repos.portals,
            rooms=rooms,
            logins=logins,
            snode=self.direct.accounts.snode,
            files=files,
            community_actors=self.community.outbound.actors,
            group_actors=self.group.outbound.actors,
            group_clients=self.group.clients,
            group_members=self.group.members,
            session_client=self.session_client,
            linked=linked,
        )

    def portal_command_deps(
        self,
        rooms: PortalRooms,
        portals: PortalRepo,
        bot: IntentAPI,
        is_ghost: Callable[[str], bool],
    ) -> PortalCommandDeps:
        """What `bridge`, `unbridge`, `finalize` and the like need of the kinds."""
        return PortalCommandDeps(
            rooms=rooms,
            portals=portals,
            communities=self.community.communities,
            community_portals=self.community.portals,
            bot=bot,
            is_ghost=is_ghost,
            intent_for=lambda mxid: bot.user(UserID(mxid)),
            # A group portal unbridged (or finalized): its group is no longer polled.
            on_unbridged={PortalKind.GROUP: self.group.unbridged},
        )

    def group_commands(
        self, groups: GroupRepo, portals: PortalRepo, logins: LoginManager, prefix: str
    ) -> list[Command]:
        """The groups section, `create-group`, and the group admin's commands."""
        group = self.group
        return group_command_list(
            invites=group.bot_invites,
            groups=groups,
            portals=portals,
            logins=logins,
            prefix=prefix,
            sync=group.sync,
            creator=group.creator,
            admin=group.admin,
        )


def portal_rooms(config: Config, bot: IntentAPI, portals: PortalRepo) -> PortalRooms:
    """The portal rooms, made and joined as the encryption settings say (README)."""
    rooms = PortalRooms(bot, portals, config.bot_mxid)
    rooms.allow_encrypted = config.encryption.allow
    rooms.encrypt_new = config.encryption.default
    rooms.require_encrypted = config.encryption.require
    return rooms


def build_kinds(deps: PortalDeps, files: FileServerClient, admins: list[str]) -> Kinds:
    """The three kinds over ``deps``, bound to each other; nothing runs yet."""
    # Received attachments name any URL: they are fetched through the allow-list.
    direct = build_direct(deps, GuardedFiles(files, deps.downloads), renew=files.extend)
    # Community posts take their sent timestamps from the clock of the direct chats'
    # storage client, which every identity shares (docs/session-protocol.md §2.11).
    community = build_community(deps, direct.accounts.snode.sent_clock)
    # Group clients ride on the identities' 1:1 clients, which the direct kind runs
    # (started before the group kind: the order of ``Kinds.all``).
    group = build_group(
        deps, direct.accounts.snode, lambda sid: (direct.accounts.get(sid) or (None, None))[1]
    )
    direct.accounts.before_start(group.before_client_start)  # subscribed before polling
    if (configs := direct.accounts.configs) is not None:  # the phone's groups and reads
        group.bind_account(account_groups(configs))
        configs.on_groups_changed(group.phone.on_groups_changed)
    direct.inbound.on_legacy_group = LegacyGroupNotices(
        bot=deps.bot,
        logins=deps.logins,
        bot_session_id=deps.bot_login.session_id,
        admins=admins,
        users=deps.repos.users,
    ).on_invite
    return Kinds(community, direct, group)

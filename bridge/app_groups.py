"""Wiring of the group kind's commands and of the phone's groups (docs/user-configs.md),
kept out of bridge/app.py, which builds the group kind itself."""

from __future__ import annotations

from bridge.commands.group_admin import group_admin_commands
from bridge.commands.group_create import group_create_commands
from bridge.commands.groups import SyncGroup, group_commands
from bridge.commands.registry import Command
from bridge.core.direct.user_configs import LoginConfigs
from bridge.core.group.admin_events import GroupAdminEvents
from bridge.core.group.bot_invites import BotInvites
from bridge.core.group.create import GroupCreator
from bridge.core.group.phone import AccountGroups
from bridge.core.logins import LoginManager
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.portals import PortalRepo

__all__ = ["account_groups", "group_command_list"]


def account_groups(configs: LoginConfigs) -> AccountGroups:
    """The user-config calls the group kind needs (docs/user-configs.md)."""

    async def joined(
        sid: str, gid: str, name: str | None, seed: bytes | None, auth: bytes | None
    ) -> bool:
        return await configs.group_joined(sid, gid, name=name, secret_key=seed, auth_data=auth)

    return AccountGroups(configs.groups_joined, joined, configs.mark_read)


def group_command_list(
    *,
    invites: BotInvites,
    groups: GroupRepo,
    portals: PortalRepo,
    logins: LoginManager,
    prefix: str,
    sync: SyncGroup,
    creator: GroupCreator | None,
    admin: GroupAdminEvents | None,
) -> list[Command]:
    """The groups section; `create-group` when the kind can create groups; `invite`,
    `promote`, `destroy-group` in group portals when it runs them from Matrix."""
    commands = group_commands(invites, groups, portals, logins, prefix, sync=sync)
    if creator is not None:
        commands += group_create_commands(creator)
    if admin is not None:
        commands += group_admin_commands(admin, portals)
    return commands

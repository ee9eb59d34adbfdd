"""``export contacts`` (docs/migration.md §4): a login's Session contacts and groups, with who
has moved, uploaded to the person's management room."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mautrix.appservice import IntentAPI

from bridge.commands.registry import CommandEvent, Handler
from bridge.core.contacts_export import contacts_document, upload_contacts
from bridge.core.logins import LoginManager
from bridge.db.records import now_ms
from bridge.session.userconfig.sync import UserConfigs


@dataclass(frozen=True)
class ContactsDeps:
    logins: LoginManager
    configs_of: Callable[[str], UserConfigs | None]
    owner_of: Callable[[str], str | None]
    management_room: Callable[[str], Awaitable[str | None]]
    bot: IntentAPI
    clock: Callable[[], int] = now_ms


def export_contacts(deps: ContactsDeps) -> Handler:
    async def handler(evt: CommandEvent) -> None:
        logins = await deps.logins.logins_of(evt.sender)
        if not logins:
            await evt.reply(
                "`export contacts` lists the contacts of your Session login, and you have none "
                "here (log in with `login`)."
            )
            return
        room = await deps.management_room(evt.sender)
        if room is None:
            await evt.reply("Open a management room with me first: the file goes there.")
            return
        for login in logins:
            configs = deps.configs_of(login.session_id)
            if configs is None:
                await evt.reply(
                    f"The contacts of `{login.session_id}` are not loaded yet (its Session "
                    "settings were not read): try again in a minute."
                )
                continue
            doc = contacts_document(
                login.session_id,
                configs.contacts(),
                configs.groups_joined(),
                deps.owner_of,
                deps.clock(),
            )
            await upload_contacts(deps.bot, room, doc)
        if room != evt.room_id:
            await evt.reply("Your contacts list is in your management room.")

    return handler

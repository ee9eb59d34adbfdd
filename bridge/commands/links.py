"""Migration commands: ``link``, ``link confirm``, ``unlink`` (docs/migration.md §1)."""

from __future__ import annotations

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.links import DIRECT_CHATS, LinkService
from bridge.db.repos.links import IdentityKind

SECTION = "Migration"


def link_commands(links: LinkService, prefix: str) -> list[Command]:
    """The identity-linking part of the migration section."""

    async def link(evt: CommandEvent) -> None:
        if not evt.args:
            await evt.reply(await _listing(links, evt.sender, prefix))
            return
        if evt.args[0].lower() == "confirm":
            if len(evt.args) != 2:
                await evt.reply(f"Usage: `{prefix} link confirm <code>`")
                return
            await evt.reply(await links.confirm_on_matrix(evt.sender, evt.args[1]))
            return
        if len(evt.args) != 1:
            await evt.reply(f"Usage: `{prefix} link <Session ID>` or `link confirm <code>`")
            return
        await evt.reply(await links.start_on_matrix(evt.sender, evt.args[0], evt.room_id))

    async def unlink(evt: CommandEvent) -> None:
        if len(evt.args) > 1:
            await evt.reply(f"Usage: `{prefix} unlink [Session ID]`")
            return
        await evt.reply(await links.unlink(evt.sender, evt.raw_args))

    return [
        Command(
            "link",
            SECTION,
            "Prove a Session ID is yours without its recovery phrase (or confirm a code)",
            link,
            Level.USER,
            usage="<Session ID> | confirm <code>",
        ),
        Command(
            "unlink",
            SECTION,
            "Remove a link made with `link` (all of yours without an argument)",
            unlink,
            Level.USER,
            usage="[Session ID]",
        ),
    ]


async def _listing(links: LinkService, mxid: str, prefix: str) -> str:
    known = await links.links_of(mxid)
    mine = "\n".join(f"* `{r.session_id}` ({r.kind.value})" for r in known)
    head = f"Your Session IDs:\n{mine}" if known else "You have no Session ID linked yet."
    if any(r.kind is IdentityKind.LINK for r in known):
        head += f"\n\n{DIRECT_CHATS}"
    return (
        f"{head}\n\nLink one with `{prefix} link <Session ID>`: I give you a code to send "
        "from that Session account to my Session ID. Or, from Session, send "
        f"`link @you:server` to my Session ID and confirm here with "
        f"`{prefix} link confirm <code>`."
    )

"""Commands for bridge admins: ``deadletters`` lists the parked items, ``retry`` takes them
back into the path they failed on (docs/architecture.md §4.7).

An item is parked when it failed for good (a refusal, undecodable data, a bug) after a few
tries; its conversation went on without it. ``retry <id>`` or ``retry all`` puts it back: a
Matrix event or a queued Matrix message is queued again, a Session message is handled again at
once. Like the other admin lists, they answer only in the admin's management room.
"""

from __future__ import annotations

from bridge.commands.admin import SECTION, only_in_management_room, reply_lines, since
from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.portal.deadletters import DeadLetters, RetryFailed
from bridge.db.records import DeadLetterRecord

MAX_ERROR_SHOWN = 300
RETRY_USAGE = "Usage: `retry <id>` (a number from `deadletters`) or `retry all`."


def dead_letter_line(record: DeadLetterRecord) -> str:
    error = (
        record.error
        if len(record.error) <= MAX_ERROR_SHOWN
        else record.error[:MAX_ERROR_SHOWN] + "…"
    )
    return (
        f"- **{record.id}** · {record.path.value} · {record.what} · {record.attempts} tries · "
        f"since {since(record.created_at)} · {error}"
    )


def dead_letter_commands(dead_letters: DeadLetters) -> list[Command]:
    """``deadletters`` and ``retry``, in the bridge-admin section."""

    only_here = only_in_management_room

    async def list_cmd(evt: CommandEvent) -> None:
        if not await only_here(evt):
            return
        records = await dead_letters.list()
        if not records:
            await evt.reply("No parked items: nothing failed for good.")
            return
        title = f"{len(records)} parked item(s) (`retry <id>` or `retry all` to try again):"
        await reply_lines(evt, title, [dead_letter_line(r) for r in records])

    async def retry_one(item_id: int) -> str | None:
        """None once retried, else why not."""
        try:
            await dead_letters.retry(item_id)
        except LookupError:
            return "there is no such parked item (`deadletters` lists them)"
        except RetryFailed as e:
            return f"{e}; it stays parked"
        return None

    async def retry_cmd(evt: CommandEvent) -> None:
        if not await only_here(evt):
            return
        if len(evt.args) != 1 or not (evt.args[0] == "all" or evt.args[0].isdecimal()):
            await evt.reply(RETRY_USAGE)
            return
        if evt.args[0] != "all":
            item_id = int(evt.args[0])
            problem = await retry_one(item_id)
            if problem is None:
                await evt.reply(f"Retried parked item {item_id}.")
            else:
                await evt.reply(f"Could not retry parked item {item_id}: {problem}.")
            return
        records = await dead_letters.list()
        if not records:
            await evt.reply("No parked items: nothing to retry.")
            return
        problems = [(r.id, await retry_one(r.id)) for r in records]
        failed = [f"- {item_id}: {problem}" for item_id, problem in problems if problem]
        title = f"Retried {len(records) - len(failed)} of {len(records)} parked item(s)."
        if failed:
            await reply_lines(evt, f"{title} Could not retry:", failed)
        else:
            await evt.reply(title)

    return [
        Command(
            "deadletters",
            SECTION,
            "list the items that failed for good (parked)",
            list_cmd,
            Level.ADMIN,
        ),
        Command(
            "retry",
            SECTION,
            "try parked items again",
            retry_cmd,
            Level.ADMIN,
            usage="<id>|all",
        ),
    ]

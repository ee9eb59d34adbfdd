"""Who a Session mention names on Matrix, looked up before the (pure) text converter runs.

A mentioned Session id (``@05…``, or ``@15…`` in a community) that is one of the bridge's own
logins names the Matrix user who owns it, shown with their display name; any other id names
its ghost, shown with the ghost's name (docs/matrix-side.md §3.6). The lookups are async (database,
homeserver); :func:`bridge.core.convert.text_to_matrix.session_text_to_content` gets the
result as a plain function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from bridge.core.convert.mentions import mentioned_session_ids
from bridge.core.convert.text_to_matrix import MentionResolver, MentionTarget
from bridge.core.ghosts import GhostManager

MemberName = Callable[[str], Awaitable[str]]
"""The display name of a Matrix user (in the room the text goes to)."""


async def mention_resolver(
    text: str,
    *,
    ghosts: GhostManager,
    owners: Mapping[str, str],
    member_name: MemberName,
) -> MentionResolver:
    """The resolver of the mentions in ``text``: ``owners`` maps the mentioned ids that are
    logins (lowercase) to their Matrix owners; every other id becomes its ghost's pill."""
    mentioned = mentioned_session_ids(text)
    names = await ghosts.pill_names([sid for sid in mentioned if sid not in owners])
    owner_names = {sid: await member_name(owners[sid]) for sid in mentioned if sid in owners}

    def resolve(session_id: str) -> MentionTarget | None:
        owner = owners.get(session_id)
        if owner is not None:
            return MentionTarget(owner, owner_names.get(session_id) or owner)
        return MentionTarget(ghosts.mxid_for(session_id), names.get(session_id) or session_id)

    return resolve

"""What the community and group kinds ask about bridge-made identities when a Matrix user
writes (docs/migration.md §7): who sends, under which name and picture.

A message goes out as the user's made identity when the bridge allows made identities, the
portal's admin allowed them (``identities allow``) and the user turned theirs on. In a group
the identity must be a member first: it joins through the group's admin identity
(``bridge/core/group/made_ids.py``); when it cannot, the user is told why, once per portal,
and the message takes the usual way (relay, or a refusal).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.core.made_ids import MadeChoice, MadeIdentities, MadeIdentity, session_name
from bridge.core.made_ids_profile import MadeProfiles
from bridge.db.records import PortalKind, PortalRecord
from bridge.session.keys import Identity
from bridge.session.messages import Profile

log = logging.getLogger("bridge.core.made_ids_send")

Notify = Callable[[str, str], Awaitable[None]]
"""(room id, Markdown) → a notice in that room."""


class MadeGroupsLike(Protocol):
    """What this needs of the group kind's part (``bridge/core/group/made_ids.py``)."""

    async def is_member(self, made: MadeIdentity, group: str) -> bool: ...

    async def join(self, made: MadeIdentity, group: str, profile: Profile) -> str | None: ...


class MadeSender:
    """The made identity a Matrix user's message goes out as, if any."""

    def __init__(
        self,
        *,
        made: MadeIdentities,
        profiles: MadeProfiles,
        groups: MadeGroupsLike | None,
        notify: Notify,
    ) -> None:
        self._made = made
        self._profiles = profiles
        self._groups = groups
        self._notify = notify
        self._told: set[tuple[int, str]] = set()

    async def choose(self, portal: PortalRecord, mxid: str, displayname: str) -> MadeChoice | None:
        """The made identity that sends ``mxid``'s message in ``portal`` (a group member by
        then), or None: the usual way."""
        choice = await self._made.choose(portal, mxid, displayname)
        if choice is None or portal.kind is not PortalKind.GROUP:
            return choice
        if self._groups is None:
            return None
        if await self._groups.is_member(choice.made, portal.session_key):
            return choice
        try:
            why = await self._groups.join(
                choice.made, portal.session_key, await self.profile(choice)
            )
        except Exception as e:
            log.warning("Bridge-made %s did not join: %s", choice.made.session_id[:10], e)
            why = (
                "Your bridge-made Session identity could not join this group just now (the "
                "Session network did not answer); your messages are relayed meanwhile."
            )
        if why is None:
            return choice
        await self._tell_once(portal, mxid, why)
        return None

    async def profile(self, choice: MadeChoice) -> Profile:
        """The profile a message of ``choice`` carries: its name and published picture."""
        return await self._profiles.profile(choice.made, choice.name)

    async def profile_of(self, session_id: str, name: str) -> Profile | None:
        """The profile of the made identity ``session_id`` for a message of its user shown
        as ``name`` on Matrix (the template applied), or None if it is no made identity."""
        for made in self._made.all():
            if made.session_id == session_id:
                template = self._made.settings.name_template
                shown = session_name(template, name, made.mxid)
                return await self._profiles.profile(made, shown)
        return None

    def identity_of(self, mxid: str) -> Identity | None:
        """``mxid``'s made identity, if any (whether on or not: its posts stay its own)."""
        made = self._made.of(mxid)
        return None if made is None else made.identity

    def identities(self) -> list[Identity]:
        """Every made identity (their posts coming back are the bridge's own)."""
        return [made.identity for made in self._made.all()]

    def owns(self, mxid: str, session_id: str | None) -> bool:
        """Whether ``session_id`` is ``mxid``'s made identity (edits and deletions)."""
        made = self._made.of(mxid)
        return made is not None and made.session_id == session_id

    async def _tell_once(self, portal: PortalRecord, mxid: str, text: str) -> None:
        if (portal.id, mxid) in self._told or portal.mxid is None:
            return
        self._told.add((portal.id, mxid))
        try:
            await self._notify(portal.mxid, f"{mxid}: {text}")
        except Exception as e:
            log.warning("Notice to %s not sent: %s", mxid, e)

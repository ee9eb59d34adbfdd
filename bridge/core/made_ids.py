"""Bridge-made Session identities for Matrix users (docs/migration.md §7).

A Matrix user without a Session account may ask the bridge for a Session identity of their
own (``session-identity on``): a fresh seed, kept encrypted at rest exactly as a login's
(:mod:`bridge.core.secrets`) in a ``session_login`` row that has no owner there (so it is never
one of the user's logins and runs no 1:1 chats), and recorded in the identity map as kind
``bridge_identity``. It is used only in the community and group portals whose admin allowed it
(``identities allow``): there the user's messages go out as that identity instead of the
relay. The user's choice and each portal's permission are small kv flags.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.core.convert.names import clean_name
from bridge.core.secrets import SeedVault
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.links import IdentityKind, LinkRepo
from bridge.db.repos.users import UserRepo
from bridge.session.keys import Identity

log = logging.getLogger("bridge.core.made_ids")

LABEL = "bridge-made"
SHARED_KINDS = (PortalKind.COMMUNITY, PortalKind.GROUP)


def user_key(mxid: str) -> str:
    return f"made-id:user:{mxid}"


def portal_key(portal_id: int) -> str:
    return f"made-id:portal:{portal_id}"


@dataclass(frozen=True)
class MadeIdentity:
    """A bridge-made identity: its ``session_login`` row id, its Matrix user, its keys."""

    login_id: int
    mxid: str
    identity: Identity

    @property
    def session_id(self) -> str:
        return self.identity.session_id.value


@dataclass(frozen=True)
class MadeChoice:
    """A message goes out as ``made``, under the Session name ``name``."""

    made: MadeIdentity
    name: str


@dataclass(frozen=True)
class MadeSettings:
    enabled: bool
    name_template: str


MadeHook = Callable[[MadeIdentity], Awaitable[None]]
HasLogin = Callable[[str], Awaitable[bool]]


async def _nothing(_: MadeIdentity) -> None:
    return None


def session_name(template: str, displayname: str, mxid: str) -> str:
    """The Session name of a made identity: the template around the Matrix name."""
    return template.format(displayname=clean_name(displayname) or mxid)


class MadeIdentities:
    """Creates, finds, allows and deletes bridge-made identities."""

    def __init__(
        self,
        *,
        users: UserRepo,
        links: LinkRepo,
        kv: KVRepo,
        vault: SeedVault,
        settings: MadeSettings,
        has_login: HasLogin,
        on_created: MadeHook = _nothing,
        on_deleted: MadeHook = _nothing,
    ) -> None:
        self._users = users
        self._links = links
        self._kv = kv
        self._vault = vault
        self.settings = settings
        self._has_login = has_login
        self.on_created = on_created
        self.on_deleted = on_deleted
        self._by_mxid: dict[str, MadeIdentity] = {}

    async def load_all(self) -> list[MadeIdentity]:
        """Every stored made identity into memory (at start)."""
        for record in await self._links.identities():
            if record.kind is not IdentityKind.BRIDGE_IDENTITY:
                continue
            login = await self._users.get_login_by_session_id(record.session_id)
            if login is None or login.mxid is not None:
                log.warning("Bridge-made identity %s has no keys", record.session_id[:10])
                continue
            seed = self._vault.decrypt(login.encrypted_seed)
            made = MadeIdentity(login.id, record.mxid, Identity.from_seed(seed))
            self._by_mxid[record.mxid] = made
        return list(self._by_mxid.values())

    def of(self, mxid: str) -> MadeIdentity | None:
        return self._by_mxid.get(mxid)

    def all(self) -> list[MadeIdentity]:
        return list(self._by_mxid.values())

    def is_made(self, session_id: str) -> bool:
        return any(m.session_id == session_id for m in self._by_mxid.values())

    async def is_on(self, mxid: str) -> bool:
        return mxid in self._by_mxid and await self._kv.get(user_key(mxid)) == "on"

    async def turn_on(self, mxid: str) -> tuple[MadeIdentity | None, str]:
        """``session-identity on``: the identity (made now if new) and the answer."""
        if not self.settings.enabled:
            return None, "Bridge-made Session identities are turned off on this bridge."
        if await self._has_login(mxid):
            return None, (
                "You are logged in with a Session account: your messages already go to "
                "Session as that account, so you need no bridge-made identity."
            )
        made = self._by_mxid.get(mxid) or await self._create(mxid)
        await self._kv.set(user_key(mxid), "on")
        return made, (
            f"Your bridge-made Session identity is on: `{made.session_id}`. In the rooms "
            "whose admin allowed it (`identities allow`), Session members see your messages "
            "as coming from it, with your Matrix name and avatar; elsewhere you stay relayed."
        )

    async def turn_off(self, mxid: str) -> str:
        if await self._kv.delete(user_key(mxid)):
            return (
                "Your bridge-made Session identity is off: your messages are relayed again "
                "(it is kept, so `session-identity on` brings the same one back)."
            )
        return "Your bridge-made Session identity was not on."

    async def _create(self, mxid: str) -> MadeIdentity:
        identity = Identity.generate()
        sid = identity.session_id.value
        record = await self._users.add_login(
            sid, self._vault.encrypt(identity.seed), mxid=None, label=LABEL
        )
        if record is None:
            raise RuntimeError("a fresh Session ID is already stored")
        if await self._links.add_link(sid, mxid, IdentityKind.BRIDGE_IDENTITY) is None:
            await self._users.remove_login(record.id)
            raise RuntimeError("a fresh Session ID is already in the identity map")
        made = MadeIdentity(record.id, mxid, identity)
        self._by_mxid[mxid] = made
        log.info("Made Session identity %s for %s", sid[:10], mxid)
        await self.on_created(made)
        return made

    async def allowed(self, portal: PortalRecord) -> bool:
        return await self._kv.get(portal_key(portal.id)) == "allow"

    async def set_allowed(self, portal: PortalRecord, allow: bool) -> None:
        if allow:
            await self._kv.set(portal_key(portal.id), "allow")
        else:
            await self._kv.delete(portal_key(portal.id))

    async def choose(self, portal: PortalRecord, mxid: str, displayname: str) -> MadeChoice | None:
        """The identity ``mxid``'s message in ``portal`` goes out as, if any: the feature on,
        the portal a community or group one that allows it, the user's identity on."""
        if not self.settings.enabled or portal.kind not in SHARED_KINDS:
            return None
        made = self._by_mxid.get(mxid)
        if made is None or not await self.is_on(mxid) or not await self.allowed(portal):
            return None
        return MadeChoice(made, session_name(self.settings.name_template, displayname, mxid))

    async def delete_all(self) -> list[str]:
        """Delete every made identity (its keys and its place in the map); what was removed,
        one line each (the global finalize, docs/migration.md §6)."""
        removed = []
        for mxid, made in list(self._by_mxid.items()):
            try:
                await self.on_deleted(made)
            except Exception:
                log.exception("Stopping bridge-made identity %s failed", made.session_id[:10])
            await self._users.remove_login(made.login_id)
            await self._links.remove_links(
                mxid, made.session_id, kind=IdentityKind.BRIDGE_IDENTITY
            )
            await self._kv.delete(user_key(mxid))
            del self._by_mxid[mxid]
            removed.append(f"{mxid}: the bridge-made identity `{made.session_id}`")
        return removed

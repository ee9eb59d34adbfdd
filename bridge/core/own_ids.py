"""The Session ids that are the bridge's own users: each login's account id (``05…``) and its
blinded ids on every bridged community server (docs/session-protocol.md §1.5).

A Session user who mentions one of them means the Matrix user behind that login, so the
mention becomes a pill of that Matrix user (docs/matrix-side.md §3.6), and none of these ids ever
gets a ghost: the person is already on Matrix. Both signs of the ``15…`` id and the ``25…`` id
are recognised, since a Session app may show any of them for the same account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from bridge.core.logins import Login, LoginManager
from bridge.core.pills import LinkedIds
from bridge.session.blinding import blind15_candidates, blind25_id

ServerKeys = Callable[[], Awaitable[Iterable[bytes]]]
"""The public keys of the community servers of bridged rooms."""


async def _no_servers() -> list[bytes]:
    return []


class OwnSessionIds:
    """Maps the Session ids of logins, blinded or not, to the Matrix users who own them."""

    def __init__(
        self,
        logins: LoginManager,
        server_keys: ServerKeys = _no_servers,
        linked: LinkedIds | None = None,
    ) -> None:
        self._logins = logins
        # Linked Session IDs (docs/migration.md §2): their mentions name the Matrix account
        # too (owners), but they are no login (owner, is_own): their ghosts stay.
        self._linked = linked
        self._server_keys = server_keys
        # (login's 05 id, server key) -> its blinded ids there; computed once (a curve
        # multiplication each).
        self._blinded: dict[tuple[str, bytes], frozenset[str]] = {}

    def owner(self, session_id: str, server_pubkey: bytes | None = None) -> str | None:
        """The Matrix user whose login is ``session_id``, or whose login has that blinded id on
        the server with ``server_pubkey``; ``None`` if it is nobody's login."""
        wanted = session_id.lower()
        for login in self._logins.cached_logins():
            if login.session_id == wanted:
                return login.record.mxid
            if server_pubkey is not None and wanted in self._blinded_ids(login, server_pubkey):
                return login.record.mxid
        return None

    def owners(self, session_ids: Iterable[str], server_pubkey: bytes | None) -> dict[str, str]:
        """:meth:`owner` of each id that is a login's, or else a linked Session ID's, keyed by
        the lowercase id (who a mention names)."""
        found = {sid.lower(): self._mentioned(sid, server_pubkey) for sid in session_ids}
        return {sid: mxid for sid, mxid in found.items() if mxid is not None}

    def _mentioned(self, session_id: str, server_pubkey: bytes | None) -> str | None:
        found = self.owner(session_id, server_pubkey)
        if found is None and self._linked is not None:
            found = self._linked.owner(session_id, server_pubkey)
        return found

    async def owner_anywhere(self, session_id: str) -> str | None:
        """:meth:`owner` on any bridged community server (for an id seen without its server,
        such as a ghost the homeserver asks about)."""
        found = self.owner(session_id)
        if found is not None or session_id[:2] not in ("15", "25"):
            return found
        for server_pubkey in await self._server_keys():
            found = self.owner(session_id, server_pubkey)
            if found is not None:
                return found
        return None

    async def is_own(self, session_id: str) -> bool:
        """Whether ``session_id`` is one of the bridge's logins, blinded or not."""
        return await self.owner_anywhere(session_id) is not None

    def _blinded_ids(self, login: Login, server_pubkey: bytes) -> frozenset[str]:
        key = (login.session_id, server_pubkey)
        ids = self._blinded.get(key)
        if ids is None:
            session_id = login.identity.session_id
            candidates = blind15_candidates(session_id, server_pubkey)
            ids = frozenset(
                [*(c.value for c in candidates), blind25_id(session_id, server_pubkey).value]
            )
            self._blinded[key] = ids
        return ids

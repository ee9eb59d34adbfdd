"""Session identities of Matrix users (logins) and of the bridge bot.

Seeds are kept only encrypted (:mod:`bridge.core.secrets`); phrases are never logged. A Matrix
user may hold several Session identities.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.core.secrets import SeedVault
from bridge.db.records import LoginRecord
from bridge.db.repos.users import UserRepo
from bridge.session.blinding import blind15_id
from bridge.session.keys import Identity
from bridge.session.mnemonic import (
    MnemonicError,
    PhraseChecksumError,
    UnknownWordError,
    WrongWordCountError,
)

log = logging.getLogger("bridge.core.logins")

LoginHook = Callable[["Login"], Awaitable[None]]


def blinded_id(login: Login, server_pubkey: bytes) -> str:
    """The ``15…`` id ``login`` has on the community server with ``server_pubkey`` (§1.5)."""
    return blind15_id(login.identity, server_pubkey).value


class LoginError(Exception):
    """A login cannot be done; the message is meant for the user."""


@dataclass(frozen=True)
class Login:
    """A stored login with its decrypted identity."""

    record: LoginRecord
    identity: Identity

    @property
    def session_id(self) -> str:
        return self.identity.session_id.value


def phrase_problem(error: MnemonicError) -> str:
    """What to tell a user whose phrase was refused (never echoing the phrase)."""
    if isinstance(error, WrongWordCountError):
        return "A Session recovery phrase has 13 words; please send all of them."
    if isinstance(error, UnknownWordError):
        return "One of the words is not in Session's word list; please check the spelling."
    if isinstance(error, PhraseChecksumError):
        return "The last word (the checksum) does not match; a word may be wrong or out of order."
    return "That is not a valid Session recovery phrase."


async def _no_hook(login: Login) -> None:
    return None


class LoginManager:
    """Adds, lists and removes Session logins; owns the bot's own identity."""

    def __init__(
        self,
        users: UserRepo,
        vault: SeedVault,
        on_login: LoginHook = _no_hook,
        on_logout: LoginHook = _no_hook,
    ) -> None:
        self._users = users
        self._vault = vault
        self._on_login = on_login
        self._on_logout = on_logout
        # Every login's identity by login id, for echo suppression and sending.
        self._cache: dict[int, Login] = {}
        self._loaded = False  # the cache holds every user's login (this is their only writer)

    async def load_all(self) -> None:
        """Fill the in-memory cache with every user's login (called at startup)."""
        for record in await self._users.list_user_logins():
            self._cache[record.id] = self._open(record)
        self._loaded = True

    def cached_identities(self) -> list[Identity]:
        """The identities of every login this process knows of."""
        return [login.identity for login in self._cache.values()]

    def cached_logins(self) -> list[Login]:
        """Every Matrix user's login this process knows of (not the bot's identity)."""
        return [login for login in self._cache.values() if login.record.mxid is not None]

    async def login_by_id(self, login_id: int) -> Login | None:
        cached = self._cache.get(login_id)
        if cached is not None:
            return cached
        record = await self._users.get_login(login_id)
        return None if record is None else self._open(record)

    def _open(self, record: LoginRecord) -> Login:
        return Login(record, Identity.from_seed(self._vault.decrypt(record.encrypted_seed)))

    async def login_with_phrase(self, mxid: str, phrase: str) -> Login:
        """Store the identity behind ``phrase`` for ``mxid``; :class:`LoginError` if refused."""
        try:
            identity = Identity.from_phrase(phrase)
        except MnemonicError as e:
            raise LoginError(phrase_problem(e)) from None
        return await self._store(mxid, identity)

    async def create_new(self, mxid: str) -> Login:
        """Create a fresh Session identity for ``mxid``."""
        return await self._store(mxid, Identity.generate())

    async def _store(self, mxid: str, identity: Identity, *, is_bot: bool = False) -> Login:
        if not is_bot:
            await self._users.ensure_user(mxid)
        existing = await self._users.get_login_by_session_id(identity.session_id.value)
        if existing is not None:
            owner = "you" if existing.mxid == mxid else "someone else on this bridge"
            raise LoginError(
                f"The Session account {identity.session_id.value} is already logged in by {owner}."
            )
        record = await self._users.add_login(
            identity.session_id.value,
            self._vault.encrypt(identity.seed),
            mxid=None if is_bot else mxid,
            is_bot=is_bot,
        )
        if record is None:
            raise LoginError("That Session account was just logged in by someone else.")
        login = Login(record, identity)
        self._cache[record.id] = login
        log.info("Session login %s added for %s", login.session_id, mxid)
        await self._on_login(login)
        return login

    async def logins_of(self, mxid: str) -> list[Login]:
        """``mxid``'s logins, oldest first (asked for every Matrix message: from the cache
        once it is loaded, with no query and no seed to decrypt)."""
        if self._loaded and mxid:
            mine = [login for login in self._cache.values() if login.record.mxid == mxid]
            return sorted(mine, key=lambda login: login.record.id)
        return [self._open(r) for r in await self._users.list_logins(mxid)]

    async def logout(self, mxid: str, session_id: str | None) -> list[str]:
        """Remove ``mxid``'s login ``session_id`` (or all of them); the removed Session IDs."""
        removed = []
        for login in await self.logins_of(mxid):
            if session_id is not None and login.session_id != session_id.lower():
                continue
            if await self._users.remove_login(login.record.id):
                self._cache.pop(login.record.id, None)
                removed.append(login.session_id)
                await self._on_logout(login)
        return removed

    async def bot_login(self) -> Login:
        """The bot's Session identity, created on first use."""
        record = await self._users.get_bot_login()
        if record is not None:
            return self._open(record)
        login = await self._store("", Identity.generate(), is_bot=True)
        log.info("Created the bot's Session identity %s", login.session_id)
        return login

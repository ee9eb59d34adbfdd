"""Ghosts: the Matrix users that stand for Session accounts.

Each Session account the bridge sees becomes ``@<username_template>:<domain>``
(``@session_05…:example.org``), registered through the appservice once (docs/matrix-side.md §1.6),
named through the display-name template (:func:`bridge.core.convert.names.ghost_displayname`:
control characters stripped, blank names replaced by the short id) and given the Session
profile picture, downloaded, decrypted (docs/session-protocol.md §2.13) and uploaded as the ghost
(docs/matrix-side.md §2.5, §7).

The ghost row remembers what was last set: the Matrix display name, and a fingerprint of the
Session avatar pointer (URL and profile key), so that a profile is re-applied only when it
changes, never on every message. When a second Session user has a name a ghost already shows,
the later ghost gets its short id appended ("Sam (Session) (ab12cd34)") and the first keeps
the plain name (docs/matrix-side.md §3.5); names are decided one at a time, so that two such users
arriving together cannot both take, or both lose, the plain name. The Session ids of the
bridge's own logins get no ghost when the homeserver asks (``is_own``): those people are on
Matrix already.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import ContentURI

from bridge.core.convert.media import image_mime_type
from bridge.core.convert.names import (
    DISPLAYNAME_MAX_BYTES,
    ghost_displayname,
    short_id,
    truncate_utf8,
)
from bridge.db.records import GhostRecord
from bridge.db.repos.ghosts import GhostRepo
from bridge.ids import BlindedID, InvalidId, SessionID, parse_any_id
from bridge.keyed_locks import KeyedLocks
from bridge.session.avatars import decrypt_avatar_from_url
from bridge.session.errors import SessionError
from bridge.session.files import FileServerError, FileServerUnreachable
from bridge.session.messages import Profile

__all__ = [
    "AvatarDownloader",
    "GhostHandle",
    "GhostManager",
    "GhostProfile",
    "IntentFactory",
    "ghost_mxid",
    "ghost_session_id",
    "image_mime_type",
]

log = logging.getLogger("bridge.core.ghosts")

AvatarDownloader = Callable[[str], Awaitable[bytes]]
"""Downloads a file-server URL (``FileServerClient.download``); raises ``SessionError``s."""
IntentFactory = Callable[[str], IntentAPI]
"""The intent of a user id (``lambda mxid: appservice.intent.user(mxid)``)."""
OwnIdCheck = Callable[[str], Awaitable[bool]]
"""Whether a Session id is one of the bridge's own logins (``OwnSessionIds.is_own``)."""
MovedCheck = Callable[[str], bool]
"""Whether a Session id (or blinded id) is linked to a Matrix account (``LinkedIds.is_moved``)."""

_GHOST_ID = "(?P<session_id>(?:05|15|25)[0-9a-f]{64})"


@dataclass(frozen=True, slots=True)
class GhostProfile:
    """What a Session message says about its sender (docs/session-protocol.md §2.5, §2.13)."""

    display_name: str | None = None
    avatar_url: str | None = None
    # AES-GCM key of the avatar blob: not an identity secret, but kept out of logs.
    avatar_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_session(cls, profile: Profile | None) -> GhostProfile | None:
        """The ghost profile of a decoded Session ``Profile`` (``None`` stays ``None``)."""
        if profile is None:
            return None
        return cls(profile.display_name, profile.avatar_url, profile.avatar_key)


@dataclass(frozen=True, slots=True)
class GhostHandle:
    """A ghost ready to act: its intent and its row as stored after :meth:`GhostManager.ensure`."""

    intent: IntentAPI
    record: GhostRecord

    @property
    def mxid(self) -> str:
        """The ghost's Matrix id."""
        return self.record.mxid

    @property
    def session_id(self) -> str:
        """The Session id the ghost stands for."""
        return self.record.session_id


def _canonical_ghost_id(session_id: str) -> str:
    """``session_id`` lowercased, if it is an account (``05``) or blinded (``15``/``25``) id."""
    parsed = parse_any_id(session_id)
    if not isinstance(parsed, SessionID | BlindedID):
        raise InvalidId(f"{parsed.prefix}… ids have no ghost; only 05, 15 and 25 ids do")
    return parsed.value


def ghost_mxid(username_template: str, domain: str, session_id: str) -> str:
    """The ghost's Matrix id; raises :class:`bridge.ids.InvalidId` for a bad Session id."""
    localpart = username_template.replace("{userid}", _canonical_ghost_id(session_id))
    return f"@{localpart}:{domain}"


def ghost_session_id(username_template: str, domain: str, mxid: str) -> str | None:
    """The Session id of a ghost's Matrix id, or ``None`` if ``mxid`` is not a valid ghost.

    Only the exact (lowercase) form :func:`ghost_mxid` makes is accepted, so the mapping is
    one-to-one and an uppercase spelling never registers a second ghost.
    """
    before, _, after = username_template.partition("{userid}")
    pattern = f"@{re.escape(before)}{_GHOST_ID}{re.escape(after)}:{re.escape(domain)}"
    match = re.fullmatch(pattern, mxid, re.ASCII)
    return match.group("session_id") if match else None


def _avatar_fingerprint(url: str, key: bytes) -> str:
    """What identifies one Session avatar: its pointer and key, hashed (the key stays secret)."""
    return hashlib.sha256(url.encode() + b"\0" + key).hexdigest()


class _BadAvatar(Exception):
    """The avatar can never be used (retrying the same pointer would fail the same way)."""


class _AvatarUnavailable(Exception):
    """The avatar could not be fetched now (file server down or failing); retry later."""


def _is_transient(error: SessionError) -> bool:
    if isinstance(error, FileServerUnreachable):
        return True
    if not isinstance(error, FileServerError):
        return False
    return error.status is None or error.status == 429 or error.status >= 500


class GhostManager:
    """Registers ghosts and keeps their Matrix profiles in step with the Session profiles."""

    def __init__(
        self,
        *,
        repo: GhostRepo,
        intent_for: IntentFactory,
        username_template: str,
        displayname_template: str,
        domain: str,
        downloader: AvatarDownloader | None,
        is_own: OwnIdCheck | None = None,
        moved: MovedCheck | None = None,
        moved_suffix: str = "",
    ) -> None:
        self._repo = repo
        # A Session ID linked to a Matrix account shows ``moved_suffix`` (docs/migration.md §2).
        self._moved = moved
        self._moved_suffix = moved_suffix
        self._is_own = is_own
        self._intent_for = intent_for
        self._username_template = username_template
        self._displayname_template = displayname_template
        self._domain = domain
        self._downloader = downloader
        # One lock per ghost while someone uses it, so that concurrent messages from a new
        # Session account register and name its ghost once.
        self._locks = KeyedLocks()
        self._naming = asyncio.Lock()
        # The rows as last read or written here (the only writer of ghost rows): a known
        # ghost's message costs no database read.
        self._records: dict[str, GhostRecord] = {}

    def mxid_for(self, session_id: str) -> str:
        """The ghost mxid of ``session_id``; raises :class:`bridge.ids.InvalidId` if malformed."""
        return ghost_mxid(self._username_template, self._domain, session_id)

    def session_id_for(self, mxid: str) -> str | None:
        """The Session id behind a ghost mxid, or ``None`` if it is not one of our ghosts."""
        return ghost_session_id(self._username_template, self._domain, mxid)

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.of(session_id)

    async def pill_names(self, session_ids: Iterable[str]) -> dict[str, str]:
        """The display names pills should show for ``session_ids`` (known ghosts' names, else
        the short id), keyed by lowercase Session id."""
        names: dict[str, str] = {}
        for session_id in session_ids:
            key = session_id.lower()
            record = await self._repo.get(key)
            names[key] = (record.displayname if record else None) or short_id(key)
        return names

    async def ensure(self, session_id: str, profile: GhostProfile | None = None) -> GhostHandle:
        """The ghost of ``session_id``, registered, with ``profile`` applied if it changed.

        Registration errors propagate (the ghost cannot act without it); a failure to set the
        name or avatar is logged and retried with the next profile, never raised.
        """
        session_id = _canonical_ghost_id(session_id)
        mxid = self.mxid_for(session_id)
        intent = self._intent_for(mxid)
        async with self._lock(session_id):
            record = self._records.get(session_id)
            if record is None:
                record = await self._repo.get(session_id) or GhostRecord(session_id, mxid)
            if not record.registered:
                await intent.ensure_registered()
                record = await self._repo.upsert(replace(record, registered=True))
                log.info("Registered ghost %s", mxid)
            self._records[session_id] = record
            changed = await self._update_name(intent, record, profile)
            changed = await self._update_avatar(intent, changed, profile)
            if changed != record:
                record = await self._repo.upsert(changed)
            self._records[session_id] = record
            return GhostHandle(intent, record)

    async def query_user(self, mxid: str) -> dict[str, Any] | None:
        """The appservice ``query_user`` hook: register any well-formed ghost (§1.5), except
        for the Session ids of the bridge's own logins: those people are on Matrix already.

        Returns a truthy dict (→ 200) once the ghost exists, ``None`` (→ 404) otherwise.
        """
        session_id = self.session_id_for(mxid)
        if session_id is None:
            return None
        if self._is_own is not None and await self._is_own(session_id):
            log.info("Not registering %s: that Session id is a login of this bridge", mxid)
            return None
        try:
            await self.ensure(session_id)
        except MatrixError as e:
            log.warning("Could not register ghost %s on query: %s", mxid, e)
            return None
        return {"registered": True}

    def _suffixed(self, name: str, session_id: str) -> str:
        if not self._moved_suffix or self._moved is None or not self._moved(session_id):
            return name
        return truncate_utf8(name + self._moved_suffix, DISPLAYNAME_MAX_BYTES)

    async def refresh_moved(self, session_id: str) -> bool:
        """Add or remove the moved suffix of an existing ghost after a link or unlink; False
        if there is no named ghost (a new one gets the suffix when it is named)."""
        session_id = _canonical_ghost_id(session_id)
        async with self._lock(session_id):
            record = self._records.get(session_id) or await self._repo.get(session_id)
            if record is None or not record.name_set or record.displayname is None:
                return False
            base = record.displayname
            if self._moved_suffix:
                base = base.removesuffix(self._moved_suffix)
            name = self._suffixed(base, session_id)
            if name != record.displayname:
                intent = self._intent_for(record.mxid)
                await intent.set_displayname(name, check_current=False)
                record = await self._repo.upsert(replace(record, displayname=name))
            self._records[session_id] = record
            return True

    async def _update_name(
        self, intent: IntentAPI, record: GhostRecord, profile: GhostProfile | None
    ) -> GhostRecord:
        # No name, or an empty one, says nothing new: keep the name we set.
        session_name = profile.display_name if profile and profile.display_name else None
        if session_name is None and record.name_set:
            return record
        name = ghost_displayname(session_name, record.session_id, self._displayname_template)
        name = self._suffixed(name, record.session_id)
        if record.name_set and name == record.displayname:
            # It has the name already, so no other ghost does (below): nothing to check.
            return record
        # One naming at a time, the name stored before the next: two Session users with the
        # same name whose first messages arrive together would otherwise both see the name
        # free (and both take it), then both see it taken (and both get the suffix).
        async with self._naming:
            if await self._repo.name_taken(name, record.session_id):
                # Someone already has it: the later one is told apart by its short id.
                suffixed = f"{name} ({short_id(record.session_id)})"
                name = truncate_utf8(suffixed, DISPLAYNAME_MAX_BYTES)
            if record.name_set and name == record.displayname:
                return record
            try:
                # check_current=False: the row knows what we set; a fresh ghost has its
                # localpart.
                await intent.set_displayname(name, check_current=False)
            except MatrixError as e:
                log.warning("Could not set the display name of %s: %s", record.mxid, e)
                return record
            return await self._repo.upsert(replace(record, displayname=name, name_set=True))

    async def _update_avatar(
        self, intent: IntentAPI, record: GhostRecord, profile: GhostProfile | None
    ) -> GhostRecord:
        if profile is None:
            return record
        url, key = profile.avatar_url, profile.avatar_key
        if not url or not key:
            # A full profile without a picture means the avatar was removed (the Session apps
            # clear theirs the same way); a bare profile key alone says nothing.
            if profile.display_name is not None and not url and record.avatar_hash is not None:
                return await self._remove_avatar(intent, record)
            return record
        fingerprint = _avatar_fingerprint(url, key)
        if fingerprint == record.avatar_hash:
            return record
        if self._downloader is None:
            log.debug("No downloader for avatars; not fetching the avatar of %s", record.mxid)
            return record
        try:
            image = await self._fetch_avatar(url, key)
            mxc = await intent.upload_media(image, mime_type=image_mime_type(image))
            await intent.set_avatar_url(mxc, check_current=False)
        except _BadAvatar as e:
            # Remember the pointer so that the same bad avatar is not fetched again.
            log.warning("Ignoring the avatar of %s: %s", record.mxid, e)
            return replace(record, avatar_hash=fingerprint)
        except (_AvatarUnavailable, MatrixError) as e:
            log.warning("Could not update the avatar of %s, will retry: %s", record.mxid, e)
            return record
        log.debug("Avatar of %s is now %s", record.mxid, mxc)
        return replace(record, avatar_mxc=str(mxc), avatar_hash=fingerprint)

    async def _fetch_avatar(self, url: str, key: bytes) -> bytes:
        assert self._downloader is not None
        try:
            blob = await self._downloader(url)
        except SessionError as e:
            if _is_transient(e):
                raise _AvatarUnavailable(f"download failed ({type(e).__name__}: {e})") from None
            # unknown or expired file, malformed URL, refused by the server
            raise _BadAvatar(f"download failed ({type(e).__name__}: {e})") from None
        try:
            image = decrypt_avatar_from_url(blob, key, url)
        except SessionError as e:
            raise _BadAvatar(f"cannot decrypt it ({type(e).__name__})") from None
        if image_mime_type(image) is None:
            raise _BadAvatar("it is not a PNG, JPEG, GIF, WebP or AVIF image")
        return image

    async def _remove_avatar(self, intent: IntentAPI, record: GhostRecord) -> GhostRecord:
        try:
            await intent.set_avatar_url(ContentURI(""), check_current=False)
        except MatrixError as e:
            log.warning("Could not remove the avatar of %s: %s", record.mxid, e)
            return record
        return replace(record, avatar_mxc=None, avatar_hash=None)

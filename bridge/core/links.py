"""Linking a Session ID to a Matrix account without the recovery phrase (docs/migration.md §1).

Both ways end with a one-time code sent from the side that must be proven:

* Matrix → Session: ``link <Session ID>`` on Matrix gives a code; the person sends it from
  that Session account to the bot's Session ID. The bridge trusts only the message's signed
  sender (docs/session-protocol.md §3.2): the code is checked against the codes issued for
  that very Session ID.
* Session → Matrix: ``link @them:server`` sent to the bot's Session ID gives a code there;
  the Matrix user confirms with ``link confirm <code>`` (the homeserver vouches for them).

Codes are single-use, expire (``migration.link_code_ttl``), are limited per requester
(``migration.link_codes_per_hour``, and a few wrong tries per window), are stored only as
their SHA-256 and compared with :func:`hmac.compare_digest`. The checks in the first part of
this module are pure; :class:`LinkService` does the I/O through the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bridge.db.records import now_ms
from bridge.db.repos.links import (
    CodeOrigin,
    IdentityKind,
    IdentityRecord,
    LinkCodeRecord,
    LinkRepo,
    Redeemed,
)
from bridge.ids import InvalidId, parse_session_id

log = logging.getLogger("bridge.core.links")

#: No 0/O, 1/I/L: a code is read off one screen and typed on another.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_HALF = 4
_CODE = re.compile(rf"([{CODE_ALPHABET}]{{4}})[- ]?([{CODE_ALPHABET}]{{4}})", re.I)
_MXID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
#: Wrong codes a requester may try per window before being told to wait.
WRONG_TRIES = 5
HOUR_MS = 3_600_000

Clock = Callable[[], int]

#: Told on Matrix with every link made (docs/migration.md §2): a link holds no key.
DIRECT_CHATS = (
    "A link holds no key of that Session account, so its direct chats cannot be read without "
    "its recovery phrase and are not bridged. To bridge them too, send `login` in your "
    "management room with the bridge bot."
)


# --- pure checks ---------------------------------------------------------------------------


def new_code() -> str:
    """A fresh code, ``XXXX-XXXX`` from :data:`CODE_ALPHABET` (about 40 bits)."""
    chars = [secrets.choice(CODE_ALPHABET) for _ in range(2 * CODE_HALF)]
    return "".join(chars[:CODE_HALF]) + "-" + "".join(chars[CODE_HALF:])


def find_code(text: str) -> str | None:
    """The code that ``text`` is (any case, with or without the dash), normalised; None if
    ``text`` is anything else than a code (an ordinary message to the bot)."""
    found = _CODE.fullmatch(text.strip())
    return None if found is None else (found.group(1) + found.group(2)).upper()


def hash_code(code: str) -> str:
    """What is stored of a code: the SHA-256 of its normalised form."""
    normal = code.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(normal.encode()).hexdigest()


class Verdict(StrEnum):
    """What a code sent by a requester is."""

    VALID = "valid"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED = "used"


def check_code(
    code: str, issued: Sequence[LinkCodeRecord], now: int
) -> tuple[Verdict, LinkCodeRecord | None]:
    """Which of the codes ``issued`` to this requester ``code`` is, and whether it may still
    be used. Every stored hash is compared, each in constant time."""
    wanted = hash_code(code)
    match: LinkCodeRecord | None = None
    for record in issued:
        if hmac.compare_digest(wanted, record.code_hash) and match is None:
            match = record
    if match is None:
        return Verdict.WRONG, None
    if match.used_at is not None:
        return Verdict.USED, match
    if match.expires_at <= now:
        return Verdict.EXPIRED, match
    return Verdict.VALID, match


class SlidingLimit:
    """At most ``limit`` events per key within ``window_ms`` (in memory)."""

    def __init__(self, limit: int, window_ms: int, clock: Clock = now_ms) -> None:
        self._limit = limit
        self._window = window_ms
        self._clock = clock
        self._seen: dict[str, deque[int]] = {}

    def allowed(self, key: str) -> bool:
        """Whether ``key`` is under the limit now (records nothing)."""
        times = self._seen.get(key)
        if times is None:
            return True
        cutoff = self._clock() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._seen[key]
            return True
        return len(times) < self._limit

    def record(self, key: str) -> None:
        self._seen.setdefault(key, deque()).append(self._clock())


def valid_mxid(text: str) -> bool:
    return bool(_MXID.match(text))


# --- the service ---------------------------------------------------------------------------

Notify = Callable[[str, str], Awaitable[None]]
"""(room id, Markdown) → tell a Matrix user something in that room."""
OnLink = Callable[[IdentityRecord], Awaitable[None]]
"""Called after a link was made or removed (its effects, docs/migration.md §2)."""


@dataclass(frozen=True)
class LinkSettings:
    bot_session_id: str
    bot_mxid: str
    command_prefix: str
    code_ttl_ms: int
    codes_per_hour: int


async def _nothing(_: IdentityRecord) -> None:
    return None


class LinkService:
    """``link``, ``link confirm``, ``unlink`` and the codes sent to the bot's Session ID."""

    def __init__(
        self,
        repo: LinkRepo,
        settings: LinkSettings,
        *,
        notify: Notify,
        on_linked: OnLink = _nothing,
        on_unlinked: OnLink = _nothing,
        clock: Clock = now_ms,
    ) -> None:
        self._repo = repo
        self._settings = settings
        self._notify = notify
        self._on_linked = on_linked
        self._on_unlinked = on_unlinked
        self._clock = clock
        self._wrong = SlidingLimit(WRONG_TRIES, settings.code_ttl_ms, clock)

    @property
    def _minutes(self) -> int:
        return max(1, round(self._settings.code_ttl_ms / 60_000))

    async def links_of(self, mxid: str) -> list[IdentityRecord]:
        return await self._repo.identities(mxid=mxid)

    async def start_on_matrix(self, mxid: str, text: str, room_id: str) -> str:
        """``link <Session ID>``: a code to send from that Session account (Markdown)."""
        try:
            session_id = parse_session_id(text.strip()).value
        except InvalidId:
            return f"`{text}` is not a Session ID (66 characters starting with 05)."
        refusal = await self._refusal(mxid, session_id)
        if refusal is not None:
            return refusal
        if not await self._may_ask(CodeOrigin.MATRIX, mxid):
            return "You asked for too many codes in the last hour; please try again later."
        code = await self._issue(CodeOrigin.MATRIX, mxid, session_id, room_id)
        bot = self._settings.bot_session_id
        return (
            f"To prove that `{session_id}` is yours, open the Session app of that account and "
            f"send this code to the bridge's Session ID `{bot}` within {self._minutes} "
            f"minutes:\n\n**{code}**\n\nThe code works once. You never need your recovery "
            f"phrase for this."
        )

    async def confirm_on_matrix(self, mxid: str, text: str) -> str:
        """``link confirm <code>``: the code a Session user got for this Matrix user."""
        code = find_code(text)
        if code is None:
            return "That is not a link code: it looks like `ABCD-EFGH`."
        key = f"matrix:{mxid}"
        if not self._wrong.allowed(key):
            return "Too many wrong codes; please wait a few minutes and try again."
        issued = await self._repo.codes_for(CodeOrigin.SESSION, mxid=mxid)
        verdict, record = check_code(code, issued, self._clock())
        if verdict is not Verdict.VALID or record is None:
            self._wrong.record(key)
            return _refusal_text(verdict)
        return await self._redeem(record, on_matrix=True)

    async def on_bot_message(self, sender: str, text: str) -> str | None:
        """A text sent to the bot's Session ID by ``sender`` (the signed sender): the answer
        if it is about linking, else None (the bot's usual auto-reply then)."""
        words = text.strip().split()
        if words and words[0].lower() == self._settings.command_prefix.lower():
            words = words[1:]
        if len(words) == 2 and words[0].lower() == "link" and words[1].startswith("@"):
            return await self._start_on_session(sender, words[1])
        code = find_code(text)
        if code is None:
            return None
        return await self._confirm_on_session(sender, code)

    async def unlink(self, mxid: str, text: str) -> str:
        """``unlink [Session ID]``: remove one link, or all of the user's links."""
        session_id = None
        if text.strip():
            try:
                session_id = parse_session_id(text.strip()).value
            except InvalidId:
                return f"`{text}` is not a Session ID (66 characters starting with 05)."
        removed = await self._repo.remove_links(mxid, session_id)
        for sid in removed:
            await self._on_unlinked(IdentityRecord(sid, mxid, IdentityKind.LINK, self._clock()))
        if not removed:
            return "No linked Session ID to remove (a login is ended with `logout`)."
        listed = ", ".join(f"`{sid}`" for sid in removed)
        log.info("%s unlinked %d Session ID(s)", mxid, len(removed))
        return f"Unlinked {listed}."

    async def _refusal(self, mxid: str, session_id: str) -> str | None:
        if session_id == self._settings.bot_session_id:
            return "That is the bridge's own Session ID."
        owner = await self._repo.owner_of(session_id)
        if owner is None:
            return None
        if owner.mxid == mxid:
            return f"`{session_id}` is already yours ({owner.kind.value})."
        return f"`{session_id}` already belongs to another Matrix user."

    async def _may_ask(self, origin: CodeOrigin, requester: str) -> bool:
        since = self._clock() - HOUR_MS
        made = await self._repo.codes_made_since(origin, requester, since)
        return made < self._settings.codes_per_hour

    async def _issue(
        self, origin: CodeOrigin, mxid: str, session_id: str, room_id: str | None
    ) -> str:
        code = new_code()
        await self._repo.add_code(
            origin,
            hash_code(code),
            mxid=mxid,
            session_id=session_id,
            ttl_ms=self._settings.code_ttl_ms,
            room_id=room_id,
        )
        await self._repo.prune_codes(self._clock() - 24 * HOUR_MS)
        log.info("Link code issued (%s) for %s", origin.value, session_id[:10])
        return code

    async def _start_on_session(self, sender: str, mxid: str) -> str:
        if not valid_mxid(mxid):
            return f"{mxid} is not a Matrix ID; it looks like @name:server.example."
        refusal = await self._refusal(mxid, sender)
        if refusal is not None:
            return refusal.replace("`", "")
        if not await self._may_ask(CodeOrigin.SESSION, sender):
            return "You asked for too many codes in the last hour; please try again later."
        code = await self._issue(CodeOrigin.SESSION, mxid, sender, None)
        prefix, bot = self._settings.command_prefix, self._settings.bot_mxid
        return (
            f"To link this Session ID to {mxid}: on Matrix, as {mxid}, send\n\n"
            f"{prefix} link confirm {code}\n\nto {bot} within {self._minutes} minutes. "
            f"The code works once."
        )

    async def _confirm_on_session(self, sender: str, code: str) -> str:
        key = f"session:{sender}"
        if not self._wrong.allowed(key):
            return "Too many wrong codes; please wait a few minutes and try again."
        issued = await self._repo.codes_for(CodeOrigin.MATRIX, session_id=sender)
        verdict, record = check_code(code, issued, self._clock())
        if verdict is not Verdict.VALID or record is None:
            self._wrong.record(key)
            return _refusal_text(verdict).replace("`", "")
        return await self._redeem(record, on_matrix=False)

    async def _redeem(self, record: LinkCodeRecord, *, on_matrix: bool) -> str:
        result = await self._repo.redeem(record)
        if result is Redeemed.TAKEN:
            text = "This Session ID already belongs to another Matrix user."
            return text if not on_matrix else f"`{record.session_id}`: {text}"
        if result is Redeemed.SPENT:
            return _refusal_text(Verdict.USED)
        log.info("Linked %s to %s", record.session_id[:10], record.mxid)
        made = IdentityRecord(record.session_id, record.mxid, IdentityKind.LINK, self._clock())
        done = f"Linked: Session ID `{record.session_id}` now belongs to {record.mxid}."
        if not on_matrix and record.room_id is not None:
            await self._notify(record.room_id, f"✅ {done}\n\n{DIRECT_CHATS}")
        try:
            await self._on_linked(made)
        except Exception:
            log.exception("The effects of linking %s failed", record.session_id[:10])
        return f"{done}\n\n{DIRECT_CHATS}" if on_matrix else done.replace("`", "")


def _refusal_text(verdict: Verdict) -> str:
    return {
        Verdict.WRONG: "That code is wrong: no such code was given for you. Check it, or ask "
        "for a new one with `link`.",
        Verdict.EXPIRED: "That code has expired; ask for a new one with `link`.",
        Verdict.USED: "That code was already used; each code works once. Ask for a new one "
        "with `link`.",
        Verdict.VALID: "",
    }[verdict]

"""A model of what the Session apps do with a message they receive, for checking the bridge.

The bridge's tests cannot run the real apps, so this module applies, to messages the bridge
stored, the receiving rules that decide whether an app shows a message at all (or applies a
profile). Each rule is written from the apps' behaviour as docs/session-protocol.md and
docs/user-configs.md describe it; the upstream file it comes from is named beside it (for
reference only: nothing here is taken from those files).

One :class:`SessionApp` is one device of one account (``own``). Feed it what that device would
read, in storage order: :meth:`SessionApp.receive_dm` for 1:1 messages and sync copies,
:meth:`SessionApp.receive_community` for community posts, :meth:`SessionApp.set_contacts` for
the account's Contacts config. Each returns a :class:`Verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.session.messages import (
    DisappearingSettings,
    Message,
    MessageRequestResponse,
    Profile,
    Reaction,
    VisibleMessage,
)

Platform = Literal["desktop", "android"]


@dataclass(frozen=True)
class Verdict:
    """Whether the app keeps a message, and why not."""

    accepted: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.accepted


ACCEPTED = Verdict(True)


@dataclass(frozen=True)
class ContactEntry:
    """What the rules read from a Contacts config (ns 3) entry (docs/user-configs.md)."""

    approved: bool = True
    blocked: bool = False
    hidden: bool = False  # priority -1


@dataclass(frozen=True)
class ShownProfile:
    """What a device shows for a sender: name, avatar URL and the update time it came with."""

    name: str | None
    avatar_url: str | None
    updated_seconds: int


@dataclass
class SessionApp:
    """One device of the account ``own``; see the module docstring."""

    own: str
    platform: Platform = "desktop"
    #: The account's Contacts config, and the time (ms) of its newest update; None: unknown.
    contacts: dict[str, ContactEntry] | None = None
    contacts_updated_ms: int = 0
    profiles: dict[str, ShownProfile] = field(default_factory=dict)
    seen_timestamps: set[int] = field(default_factory=set)
    seen_posts: set[tuple[str, float]] = field(default_factory=set)
    kept: list[tuple[str, int, Message]] = field(default_factory=list)

    def set_contacts(self, contacts: dict[str, ContactEntry], updated_ms: int) -> None:
        """The account's Contacts config as the device last merged it."""
        self.contacts = dict(contacts)
        self.contacts_updated_ms = updated_ms

    # --- 1:1 messages and sync copies --------------------------------------------------------

    def receive_dm(self, sender: str, timestamp: int, content: Message) -> Verdict:
        """A verified 1:1 message (or sync copy, when ``sender`` is ``own``) sent at
        ``timestamp``, in the order the device reads it."""
        checks = (
            self._signed_timestamp(timestamp, content),
            self._blocked(sender),
            self._sync_copy(sender, timestamp, content),
            self._duplicate_timestamp(timestamp),
        )
        for verdict in checks:
            if not verdict:
                return verdict
        self.seen_timestamps.add(timestamp)
        self.kept.append((sender, timestamp, content))
        if sender != self.own:
            self._apply_profile(sender, _profile_of(content))
        return ACCEPTED

    def _signed_timestamp(self, timestamp: int, content: Message) -> Verdict:
        # desktop ts/receiver/common.ts (shouldProcessContentMessage): a set sigTimestamp must
        # equal the envelope timestamp (docs/session-protocol.md §2.11).
        if content.sig_timestamp is not None and content.sig_timestamp != timestamp:
            return Verdict(False, "sigTimestamp differs from the envelope timestamp")
        return ACCEPTED

    def _blocked(self, sender: str) -> Verdict:
        # desktop ts/receiver/contentMessage.ts and Android libsession
        # messaging/sending_receiving/MessageReceiver.kt (shouldDiscardIfBlocked): messages
        # from a contact blocked in Contacts are dropped (docs/user-configs.md §4).
        entry = (self.contacts or {}).get(sender)
        if sender != self.own and entry is not None and entry.blocked:
            return Verdict(False, "sender is blocked")
        return ACCEPTED

    def _sync_copy(self, sender: str, timestamp: int, content: Message) -> Verdict:
        # desktop ts/receiver/contentMessage.ts (shouldDropIncomingPrivateMessage): a sync copy
        # whose syncTarget a Contacts config newer than the message lacks, or hides, is
        # dropped (docs/session-protocol.md §3.3).
        if sender != self.own:
            return ACCEPTED
        target = _sync_target(content)
        if target is None or self.contacts is None or self.contacts_updated_ms <= timestamp:
            return ACCEPTED
        entry = self.contacts.get(target)
        if entry is None:
            return Verdict(False, "syncTarget missing from a newer Contacts config")
        if entry.hidden:
            return Verdict(False, "syncTarget hidden in a newer Contacts config")
        return ACCEPTED

    def _duplicate_timestamp(self, timestamp: int) -> Verdict:
        # Android app/.../database/Storage.kt (isDuplicateMessage): a message whose timestamp
        # was already seen from any sender is dropped (docs/session-protocol.md §2.11).
        if self.platform == "android" and timestamp in self.seen_timestamps:
            return Verdict(False, "timestamp already seen")
        return ACCEPTED

    # --- profiles -----------------------------------------------------------------------------

    def _apply_profile(self, sender: str, profile: Profile | None) -> bool:
        # desktop ts/models/profile.ts (shouldApplyChange): applied only when its
        # lastProfileUpdateSeconds is later than the one shown (both 0 also passes), and a
        # profile without a picture removes the avatar (docs/session-protocol.md §2.13).
        if profile is None:
            return False
        updated = profile.updated_seconds or 0
        shown = self.profiles.get(sender)
        if shown is not None and not (
            updated > shown.updated_seconds or updated == shown.updated_seconds == 0
        ):
            return False
        self.profiles[sender] = ShownProfile(profile.display_name, profile.avatar_url, updated)
        return True

    # --- communities ----------------------------------------------------------------------------

    def receive_community(self, session_id: str, posted: float, content: Message) -> Verdict:
        """A community post by ``session_id`` that the server stamped ``posted``."""
        # desktop ts/session/apis/open_group_api/sogsv3/SogsFilterDuplicate.ts: a community
        # message is known by (session_id, posted); a second one is dropped, so an edit that
        # keeps both is never shown (docs/session-protocol.md §5.6).
        key = (session_id, posted)
        if self.platform == "desktop" and key in self.seen_posts:
            return Verdict(False, "community (session_id, posted) already seen")
        blocked = self._blocked(session_id)
        if not blocked:
            return blocked
        self.seen_posts.add(key)
        self.kept.append((session_id, int(posted * 1000), content))
        self._apply_profile(session_id, _profile_of(content))
        return ACCEPTED


def _sync_target(content: Message) -> str | None:
    if isinstance(content, VisibleMessage | Reaction | DisappearingSettings):
        return content.sync_target
    return None


def _profile_of(content: Message) -> Profile | None:
    if isinstance(content, VisibleMessage | MessageRequestResponse):
        return content.profile
    return None

"""Permission levels set by the homeserver admin in ``bridge.permissions``.

A user's level is looked up by exact Matrix user id, then by homeserver domain, then ``*``;
no match means no access at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class Level(IntEnum):
    NONE = 0
    RELAY = 1
    USER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Level:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown permission level {name!r}") from None


def level_for(mxid: str, permissions: Mapping[str, str]) -> Level:
    """The level of ``mxid`` (``@user:domain``) under ``permissions``."""
    domain = mxid.partition(":")[2]
    for key in (mxid, domain, "*"):
        if key and key in permissions:
            return Level.parse(permissions[key])
    return Level.NONE


NOT_ALLOWED = (
    "You are not allowed to use this bridge. Ask the bridge admin (whoever runs it on your "
    "homeserver) if you need access."
)


def level_summary(level: Level) -> str:
    """What a user at ``level`` may do, in one sentence (for refusals)."""
    if level == Level.NONE:
        return NOT_ALLOWED
    if level == Level.RELAY:
        return (
            "At your level (*relay*) you may use `help`, `ping` and `version`; your messages "
            "in bridged rooms are relayed to Session when a bridge admin has turned relay on "
            "there. Ask the bridge admin if you need more."
        )
    if level == Level.USER:
        return (
            "At your level (*user*) you may log in with a Session account, bridge rooms and "
            "start direct chats; `help` lists your commands. Ask the bridge admin if you need "
            "more."
        )
    return "You are a bridge admin: `help` lists every command."


def no_login_refusal(level: Level, what: str, bot_mxid: str) -> str:
    """Why a ``what`` ("message", "reaction" or "direct chat") of a user without a Session
    login (and, for messages, in a room with relay off) did not reach Session, and what that
    user can do about it at ``level``."""
    if level == Level.NONE:
        return f"Your {what} was not sent to Session. {NOT_ALLOWED}"
    if what == "direct chat":
        if level == Level.RELAY:
            return (
                "Direct chats need a Session login, and your level (*relay*) does not include "
                "logging in. Ask the bridge admin if you need it."
            )
        return f"You need a Session login for direct chats: send `login` to {bot_mxid}."
    if level == Level.RELAY:
        return (
            f"Your {what} was not sent to Session: relay is off in this room. Your messages "
            "are relayed when relay is on; ask a bridge admin to turn it on here."
        )
    advice = (
        "turn relay on here (`relay on`)"
        if level == Level.ADMIN
        else "ask a bridge admin to turn relay on"
    )
    return (
        f"Your {what} was not sent to Session: you have no Session login and relay is off in "
        f"this room. Send `login` to the bridge bot ({bot_mxid}) in a direct chat, or {advice}."
    )

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

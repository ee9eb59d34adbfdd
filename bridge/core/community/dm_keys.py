"""Keys of community DM portals (blinded DMs, docs/session-protocol.md §5.10).

A blinded DM portal is a community portal whose "room token" is ``dm:<our Session ID>:<peer
blinded id>``: its ``session_key`` keeps the community form ``<base URL>|<token>|<server key>``
(:func:`~bridge.core.community.service.community_key`), so everything that reads a
community portal's server still does, while a real room token (``[0-9a-zA-Z_-]``, §5.1) can
never start with ``dm:``. Pure functions.
"""

from __future__ import annotations

from bridge.core.community.service import community_key, parse_community_key
from bridge.db.records import PortalRecord
from bridge.ids import BlindedID
from bridge.session.sogs.urls import CommunityServerRef

__all__ = ["dm_portal_key", "is_dm_portal", "is_dm_token", "parse_dm_token"]

_PREFIX = "dm:"


def dm_portal_key(server: CommunityServerRef, ours: str, peer: str) -> str:
    """The ``session_key`` of the DM between our identity ``ours`` (its ``05`` id) and the
    blinded id ``peer`` on ``server``."""
    return community_key(server, f"{_PREFIX}{ours}:{peer}")


def is_dm_token(token: str) -> bool:
    return token.startswith(_PREFIX)


def parse_dm_token(token: str) -> tuple[str, BlindedID]:
    """(our Session ID, the peer's blinded id) of a DM portal's token; ValueError if not."""
    if not is_dm_token(token):
        raise ValueError("not a community DM portal")
    ours, _, peer = token[len(_PREFIX) :].partition(":")
    return ours, BlindedID.parse(peer)


def is_dm_portal(portal: PortalRecord) -> bool:
    """Whether a community portal is a blinded DM (not a room)."""
    try:
        _, token = parse_community_key(portal.session_key)
    except ValueError:
        return False
    return is_dm_token(token)

"""What to tell a Matrix user when a community server cannot be used for a room.

A server that cannot be reached (nothing listening, DNS, TLS, no answer in time) is not a
server that refused: the first may work later as it is, the second needs another URL, key or
room. A 401 to our signed request means the URL's ``public_key`` is not the server's, since
the server checks signatures against its own key (docs/session-protocol.md §5.2).
"""

from __future__ import annotations

import logging

from bridge.session.errors import SessionError
from bridge.session.netguard import DestinationRefused
from bridge.session.sogs.errors import (
    CommunityError,
    CommunityForbidden,
    CommunityUnreachable,
    RoomNotFound,
    WrongServerKey,
)
from bridge.session.sogs.urls import CommunityServerRef

log = logging.getLogger("bridge.core.community.refusals")


def lookup_refusal(server: CommunityServerRef, room: str, error: SessionError) -> str:
    """The sentence for the user when looking up ``room`` on ``server`` failed with ``error``
    (whose details are logged, not shown)."""
    log.info("Community room %s on %s not usable: %r", room, server.base_url, error)
    where = server.base_url
    if isinstance(error, DestinationRefused):  # it names the address: logged above only
        return (
            f"I do not connect to the community server at {where}: it is on an internal "
            "address (loopback, private or link-local), which this bridge reaches only for "
            "hosts its admin listed (`session.internal_hosts`)."
        )
    if isinstance(error, CommunityUnreachable):
        if isinstance(error.__cause__, TimeoutError):
            return (
                f"The community server at {where} did not answer in time. It may be down or "
                "overloaded: try again later."
            )
        reason = type(error.__cause__).__name__ if error.__cause__ else "no connection"
        return (
            f"I could not reach the community server at {where} ({reason}). Check the "
            "address in the URL; if it is right, the server may be down: try again later."
        )
    if isinstance(error, WrongServerKey):
        return (
            f"The community server at {where} does not accept that public_key: it is not the "
            "key of this server. Copy the community URL again from the Session app."
        )
    if isinstance(error, RoomNotFound):
        return f"There is no room `{room}` on the community server at {where}."
    if isinstance(error, CommunityForbidden):
        return f"The community server at {where} does not let me into `{room}` (banned?)."
    status = error.status if isinstance(error, CommunityError) else None
    if status is not None and (status >= 500 or status == 429):
        return (
            f"The community server at {where} could not answer right now (HTTP {status}): "
            "try again later."
        )
    # The server's own words may carry anything (addresses of its backends, a proxy's error
    # page): the status says enough; the command logs the rest.
    said = f" (HTTP {status})" if status is not None else ""
    return f"The community server at {where} refused the request{said}."

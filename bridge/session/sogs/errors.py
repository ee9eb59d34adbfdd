"""Typed errors of the community client (docs/session-protocol.md §5)."""

from __future__ import annotations

from bridge.session.errors import DecodeError, InvalidInput, ProtocolError

__all__ = [
    "CommunityError",
    "CommunityForbidden",
    "CommunityHttpError",
    "CommunityNotFound",
    "CommunityUnreachable",
    "InvalidCommunityReply",
    "InvalidCommunityUrl",
    "RequestRejected",
    "RequestTooLarge",
    "RoomNotFound",
    "TimingRejected",
    "WrongServerKey",
]


class InvalidCommunityUrl(InvalidInput):
    """A community URL is not ``http(s)://host[:port]/<room>?public_key=<64 hex>`` (§5.1)."""


class CommunityError(ProtocolError):
    """A community server refused a request or could not be reached; ``status`` if it answered."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CommunityUnreachable(CommunityError):
    """Connection refused, DNS/TLS failure or timeout."""


class CommunityHttpError(CommunityError):
    """A non-2xx status without a more specific meaning."""


class RequestRejected(CommunityHttpError):
    """400: the server found the request malformed (e.g. a post signature it refused)."""


class WrongServerKey(CommunityHttpError):
    """401: the server refused our signature; the URL's ``public_key`` is probably wrong."""


class CommunityForbidden(CommunityHttpError):
    """403: banned, or no permission for this action (e.g. editing someone else's post)."""


class CommunityNotFound(CommunityHttpError):
    """404: no such message, file or inbox recipient."""


class RoomNotFound(CommunityNotFound):
    """404 for a room: the token does not exist on this server."""


class RequestTooLarge(CommunityHttpError):
    """413: the upload is over the server's limit."""


class TimingRejected(CommunityHttpError):
    """425: our clock is more than 24 h off, or a nonce was reused (§5.2)."""


class InvalidCommunityReply(CommunityError, DecodeError):
    """A 2xx reply whose body does not have the shape §5 describes."""

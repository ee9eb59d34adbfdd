"""Typed errors of the storage-server ("snode") client (§6.14)."""

from __future__ import annotations

from bridge.session.errors import CryptoError, InvalidInput, ProtocolError, SessionError


class SnodeError(ProtocolError):
    """A storage node answered with an error status, or never answered usefully."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BadRequest(SnodeError):
    """400: the node rejected the request as malformed."""


class Unauthorized(SnodeError):
    """401: the node rejected our signature (or a signature was missing)."""


class Forbidden(SnodeError):
    """403: e.g. a TTL outside the allowed range (§6.12)."""


class NotFound(SnodeError):
    """404: e.g. ``delete`` with ``required`` that deleted nothing."""


class ClockSkew(SnodeError):
    """406/425: our timestamp is too far from the node's clock, even after a resync."""


class WrongSwarm(SnodeError):
    """421 could not be resolved within the allowed number of swarm updates."""


class SwarmUnavailable(SnodeError):
    """Every attempt failed (timeouts, connection errors, 5xx) within the retry budget."""


class BootstrapError(SnodeError):
    """No seed node gave us a usable service-node list."""


class InvalidResponse(SnodeError):
    """A 2xx reply whose body does not have the shape the protocol requires."""


class InvalidSignature(CryptoError):
    """A request signature did not verify (server side, :func:`auth.verify_request`)."""


class InvalidAuthParams(InvalidInput):
    """Auth parameters are missing or malformed (server side, maps to 400)."""


__all__ = [
    "BadRequest",
    "BootstrapError",
    "ClockSkew",
    "Forbidden",
    "InvalidAuthParams",
    "InvalidResponse",
    "InvalidSignature",
    "NotFound",
    "SessionError",
    "SnodeError",
    "SwarmUnavailable",
    "Unauthorized",
    "WrongSwarm",
]


class NodeUnreachable(SnodeError):
    """Connection failure, TLS failure or timeout talking to one node."""


__all__ += ["NodeUnreachable"]

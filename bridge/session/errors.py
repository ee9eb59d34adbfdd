"""Typed errors of the Session client.

Every decoder and verifier in ``bridge.session`` raises a subclass of :class:`SessionError`
and nothing else, so callers can log one line, drop the bad item and carry on.
Modules add their own, more specific subclasses of these.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every error raised by ``bridge.session``."""


class InvalidInput(SessionError):
    """A value given by a user or operator (phrase, id, URL) is not acceptable."""


class DecodeError(SessionError):
    """Bytes received from the network could not be decoded (base64, protobuf, bencode...)."""


class CryptoError(SessionError):
    """Decryption failed, or a signature or MAC did not verify."""


class ProtocolError(SessionError):
    """A peer answered in a way the protocol does not allow."""

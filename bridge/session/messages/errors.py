"""Errors of the ``Content`` codec."""

from __future__ import annotations

from bridge.session.errors import DecodeError, InvalidInput


class ContentDecodeError(DecodeError):
    """Received ``Content`` bytes could not be turned into a message."""


class MalformedContent(ContentDecodeError):
    """The bytes are not a ``Content`` protobuf."""


class MissingField(ContentDecodeError):
    """A field the protocol requires (proto2 ``required``, §2) is absent."""


class InvalidMessage(InvalidInput):
    """A message model cannot be encoded (value out of range, unsendable kind...)."""

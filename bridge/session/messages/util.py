"""Small helpers shared by the ``Content`` decoders."""

from __future__ import annotations

from typing import TypedDict

from bridge.session.messages import model as m
from bridge.session.messages.errors import MissingField
from bridge.session.proto import ProtobufMessage
from bridge.session.proto import SessionProtos_pb2 as pb


class Common(TypedDict):
    """Keyword arguments of :class:`bridge.session.messages.model.ContentFields`."""

    expiry: m.Expiry | None
    sig_timestamp: int | None


def require(message: ProtobufMessage, *names: str) -> None:
    """Raise :class:`MissingField` unless every field in ``names`` is present (proto2 required)."""
    for name in names:
        if not message.HasField(name):
            raise MissingField(f"{message.DESCRIPTOR.name}.{name} is required")


def text(value: str | bytes) -> str:
    """A protobuf string field as ``str``.

    upb hands out proto2 strings with invalid UTF-8 as ``bytes``; decode those leniently.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def text_or_none(message: ProtobufMessage, name: str) -> str | None:
    """The optional string field ``name`` of ``message``, or ``None`` when absent."""
    if not message.HasField(name):
        return None
    return text(getattr(message, name))


def profile_from(profile: pb.LokiProfile | None, profile_key: bytes | None) -> m.Profile | None:
    """Combine ``LokiProfile`` and the separate ``profileKey`` field (§2.5, §2.13)."""
    if profile is None and profile_key is None:
        return None
    if profile is None:
        return m.Profile(avatar_key=profile_key)
    updated = profile.lastProfileUpdateSeconds
    return m.Profile(
        display_name=text_or_none(profile, "displayName"),
        avatar_url=text_or_none(profile, "profilePicture"),
        avatar_key=profile_key,
        updated_seconds=updated if profile.HasField("lastProfileUpdateSeconds") else None,
    )


def data_profile(data: pb.DataMessage) -> m.Profile | None:
    """The sender profile carried by a ``DataMessage``."""
    return profile_from(
        data.profile if data.HasField("profile") else None,
        data.profileKey if data.HasField("profileKey") else None,
    )

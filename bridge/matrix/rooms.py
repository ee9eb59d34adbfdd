"""Shapes of portal rooms: bridge-info state and power levels (docs/matrix-side.md §2.6, §3.1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

BRIDGE_INFO_TYPES = ("m.bridge", "uk.half-shot.bridge")
BOT_POWER = 100


@dataclass(frozen=True)
class Channel:
    """What a portal is bridged to, as the bridge-info event names it."""

    id: str
    displayname: str
    network_id: str | None = None
    network_name: str | None = None
    external_url: str | None = None
    avatar_url: str | None = None


def bridge_info_state_key(protocol: str, channel: Channel) -> str:
    """``<prefix>://<protocol>/<network>/<channel>``, ``/`` escaped, lowercase (MSC2346)."""
    parts = [channel.network_id, channel.id] if channel.network_id else [channel.id]
    escaped = "/".join(quote(p.lower(), safe="") for p in parts)
    return f"org.sessionbridge://{protocol}/{escaped}"


def bridge_info_content(
    bot_mxid: str, protocol: dict[str, str], channel: Channel
) -> dict[str, Any]:
    """The content sent under both bridge-info event types."""
    content: dict[str, Any] = {"bridgebot": bot_mxid, "creator": bot_mxid, "protocol": protocol}
    chan: dict[str, str] = {"id": channel.id, "displayname": channel.displayname}
    if channel.external_url:
        chan["external_url"] = channel.external_url
    if channel.avatar_url:
        chan["avatar_url"] = channel.avatar_url
    content["channel"] = chan
    if channel.network_id:
        content["network"] = {"id": channel.network_id, "displayname": channel.network_name or ""}
    return content


def portal_power_levels(
    bot_mxid: str,
    *,
    bot_is_creator: bool = False,
    announcement_only: bool = False,
    admins: Sequence[str] = (),
) -> dict[str, Any]:
    """Power level overrides for a portal: everyone may talk and react; the bot rules; the
    encryption switch stays with the bot until end-to-bridge encryption exists; ``admins``
    (the Matrix user who asked for the portal) get 100, so they can moderate and redact.

    When the bot creates the room it is not listed in ``users``: the homeserver's defaults
    give the creator 100 in rooms up to v11, and in v12 the creator has unlimited power and
    must not be listed (Synapse refuses the room otherwise; docs/matrix-side.md §2.6).
    """
    levels: dict[str, Any] = {
        "events_default": 50 if announcement_only else 0,
        "events": {
            "m.reaction": 0,
            "m.room.encryption": BOT_POWER,
            "m.room.tombstone": BOT_POWER,
            "m.room.power_levels": BOT_POWER,
            "m.room.name": 50,
            "m.room.avatar": 50,
            "m.room.topic": 50,
        },
        "redact": 50,
    }
    users = {mxid: BOT_POWER for mxid in admins}
    if not bot_is_creator:
        users[bot_mxid] = BOT_POWER
    if users:
        levels["users"] = users
    return levels

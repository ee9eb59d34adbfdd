"""Community URLs: ``https://host[:port]/<room>?public_key=<64-hex X25519 key>`` (§5.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from bridge.session.blinding import InvalidServerKeyError, parse_server_pubkey
from bridge.session.sogs.errors import InvalidCommunityUrl

__all__ = ["CommunityServerRef", "CommunityUrl", "parse_community_url", "valid_room_token"]

_ROOM_TOKEN = re.compile(r"[0-9a-zA-Z_-]{1,64}", re.ASCII)


def valid_room_token(token: str) -> bool:
    """True for a room token matching ``[0-9a-zA-Z_-]{1,64}`` (§5.1)."""
    return isinstance(token, str) and _ROOM_TOKEN.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class CommunityServerRef:
    """A community server: base URL (scheme, host, port; no trailing ``/``) and X25519 key."""

    base_url: str
    pubkey: bytes

    def room_url(self, room: str) -> str:
        """The shareable community URL of one room on this server."""
        return f"{self.base_url}/{room}?public_key={self.pubkey.hex()}"


@dataclass(frozen=True, slots=True)
class CommunityUrl:
    """A parsed community URL: the server and one room token."""

    server: CommunityServerRef
    room: str

    def __str__(self) -> str:
        return self.server.room_url(self.room)


def parse_community_url(text: str) -> CommunityUrl:
    """Parse a community URL, raising :class:`InvalidCommunityUrl` for anything off (§5.1).

    The scheme is kept (``http`` is legal, e.g. for the official server's onion-less IP
    form and for the devnet); host case is folded; the room token and the 64-hex
    ``public_key`` are checked.
    """
    if not isinstance(text, str):
        raise InvalidCommunityUrl("a community URL must be text")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidCommunityUrl(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCommunityUrl("a community URL starts with https:// or http:// and a host")
    room = parts.path.strip("/")
    if not valid_room_token(room):
        raise InvalidCommunityUrl("the path must be one room token ([0-9a-zA-Z_-]{1,64})")
    keys = parse_qs(parts.query).get("public_key", [])
    if len(keys) != 1:
        raise InvalidCommunityUrl("the URL needs exactly one ?public_key=<64 hex>")
    try:
        pubkey = parse_server_pubkey(keys[0])
    except InvalidServerKeyError as exc:
        raise InvalidCommunityUrl(str(exc)) from exc
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return CommunityUrl(CommunityServerRef(f"{parts.scheme}://{netloc}", pubkey), room)

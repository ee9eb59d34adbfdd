"""The alias of a community portal: ``#<prefix><room>.<server>.<key>:<domain>``.

``<prefix>`` is what ``bridge.username_template`` has before ``{userid}`` (``session_``): the
registration reserves exactly those aliases for the bridge (docs/matrix-side.md §1.1). ``<room>``
is the room token as it is (``[0-9a-zA-Z_-]``, never a dot), ``<server>`` the server's host
and port in lowercase with anything but letters, digits, dots and dashes made a dash, and
``<key>`` the first 8 hex digits of the server's public key, so the same room name on another
server, or the same URL with another key, has another alias. E.g. the lobby of
``https://open.getsession.org`` is ``#session_lobby.open.getsession.org.a03c383c:example.org``.

The alias is computed, never stored: the bridge recognises one by computing the aliases of
the rooms it knows (:func:`alias_room`, :func:`matches`).
"""

from __future__ import annotations

import hashlib
import re

from bridge.session.sogs.urls import CommunityServerRef, valid_room_token

MAX_ALIAS_LENGTH = 255  # Synapse's limit on a whole alias (``#…:domain``)
_NOT_LABEL = re.compile(r"[^a-z0-9.-]")


def alias_prefix(username_template: str) -> str:
    """The alias prefix the registration reserves (see :mod:`bridge.registration`)."""
    return username_template.partition("{userid}")[0]


def server_label(server: CommunityServerRef) -> str:
    """``<host and port>.<8 hex of the key>``: names a server (URL and key) in aliases."""
    host = server.base_url.split("://", 1)[-1].lower()
    return f"{_NOT_LABEL.sub('-', host)}.{server.pubkey.hex()[:8]}"


def alias_localpart(prefix: str, domain: str, server: CommunityServerRef, room: str) -> str:
    """The alias localpart of the portal of ``room`` on ``server``.

    A host so long that the alias would pass Synapse's 255 characters is replaced by a hash.
    """
    localpart = f"{prefix}{room}.{server_label(server)}"
    if len(f"#{localpart}:{domain}") > MAX_ALIAS_LENGTH:
        digest = hashlib.sha256(server.base_url.encode()).hexdigest()[:16]
        localpart = f"{prefix}{room}.{digest}.{server.pubkey.hex()[:8]}"
    return localpart


def alias_room(alias: str, prefix: str, domain: str) -> str | None:
    """The room token an alias of ours names, or ``None`` if it is not one."""
    if not alias.startswith(f"#{prefix}") or not alias.endswith(f":{domain}"):
        return None
    localpart = alias[1 : -len(domain) - 1]
    room, dot, _ = localpart[len(prefix) :].partition(".")
    return room if dot and valid_room_token(room) else None


def matches(alias: str, prefix: str, domain: str, server: CommunityServerRef, room: str) -> bool:
    """Whether ``alias`` is the alias of ``room`` on ``server``."""
    return alias == f"#{alias_localpart(prefix, domain, server, room)}:{domain}"

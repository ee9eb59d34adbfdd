"""The appservice registration the homeserver loads (pure: no I/O).

Follows mautrix's conventions (docs/matrix-side.md §1.1): a random, never-used ``sender_localpart``
with the bot in the user namespace instead; exclusive namespaces anchored with ``^…$``
(Synapse uses a prefix match); ``rate_limited: false``; both ephemeral flags.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from bridge.config import GENERATED_TOKEN, Config


def new_token() -> str:
    """A fresh 64-character random token."""
    return secrets.token_urlsafe(48)


def new_secrets_key() -> str:
    """A fresh key for encrypting Session seeds at rest (base64 of 32 random bytes)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def generated_values(config: Config, *, rotate: bool = False) -> dict[tuple[str, str], str]:
    """The ``(section, key)`` values ``-g`` saves into the config file: a token only where the
    config has none (the ``generate`` placeholder), or both with ``rotate``; a secrets key only
    where there is none. Tokens the homeserver already has are kept, so writing the
    registration again after an edit does not lock the bridge out until a homeserver restart.
    """
    values = {}
    for name in ("as_token", "hs_token"):
        if rotate or getattr(config.appservice, name) in ("", GENERATED_TOKEN):
            values[("appservice", name)] = new_token()
    if not config.bridge.secrets_key:
        values[("bridge", "secrets_key")] = new_secrets_key()
    return values


def ghost_user_regex(username_template: str, domain: str) -> str:
    """The user-id regex covering every ghost made from ``username_template``."""
    before, _, after = username_template.partition("{userid}")
    return f"^@{re.escape(before)}.*{re.escape(after)}:{re.escape(domain)}$"


def make_registration(config: Config, sender_localpart: str | None = None) -> dict[str, Any]:
    """The registration for ``config`` (whose tokens must already be set)."""
    domain = config.homeserver.domain
    bot = re.escape(config.appservice.bot_username)
    alias_prefix = config.bridge.username_template.partition("{userid}")[0]
    return {
        "id": config.appservice.id,
        "url": config.appservice.address,
        "as_token": config.appservice.as_token,
        "hs_token": config.appservice.hs_token,
        "sender_localpart": sender_localpart or secrets.token_hex(16),
        "rate_limited": False,
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
        # Device lists and one-time-key counts for end-to-bridge encryption (README,
        # Encryption); the bridge ignores them while encryption.allow is off.
        "org.matrix.msc3202": True,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": f"^@{bot}:{re.escape(domain)}$"},
                {
                    "exclusive": True,
                    "regex": ghost_user_regex(config.bridge.username_template, domain),
                },
            ],
            "aliases": [
                {
                    "exclusive": True,
                    "regex": f"^#{re.escape(alias_prefix)}.*:{re.escape(domain)}$",
                },
            ],
            "rooms": [],
        },
    }

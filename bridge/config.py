"""Typed configuration of the bridge.

The dataclasses below are the single source of truth: ``config.example.yaml`` documents the
same keys with the same defaults (``tests/test_config.py`` keeps both equal). A file written
for an older version of the bridge is first upgraded (:mod:`bridge.config_upgrade`). A YAML
file is read into them strictly (an unknown key is an error, a wrong type is an error), then
every key can be overridden from the environment as ``BRIDGE_<SECTION>_<KEY>`` (values are
parsed as YAML, so ``BRIDGE_BRIDGE_PERMISSIONS='{"*": "user"}'`` works); any other
``BRIDGE_*`` variable is an error, so a misspelt override cannot go unnoticed.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import ipaddress
import logging
import os
import string
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings
import yaml

from bridge.config_upgrade import CONFIG_VERSION, ConfigVersionError, upgrade

log = logging.getLogger("bridge.config")

T = typing.TypeVar("T")

ENV_PREFIX = "BRIDGE_"
# BRIDGE_* variables that are not config keys: the config file of ``alembic`` run by hand
# (alembic/env.py) and the migration scripts' directory (bridge.db.migrate).
OTHER_ENV = frozenset({"BRIDGE_CONFIG", "BRIDGE_ALEMBIC_DIR"})
GENERATED_TOKEN = "generate"
EXAMPLE_DOMAIN = "example.org"
PERMISSION_LEVELS = ("relay", "user", "admin")


class ConfigError(Exception):
    """The configuration file or an environment override is not valid."""


@dataclass
class HomeserverConfig:
    address: str = "http://localhost:8008"
    domain: str = EXAMPLE_DOMAIN
    verify_ssl: bool = True


@dataclass
class AppserviceConfig:
    address: str = "http://localhost:29340"
    hostname: str = "127.0.0.1"
    port: int = 29340
    id: str = "session"
    bot_username: str = "sessionbot"
    bot_displayname: str = "Session bridge bot"
    bot_avatar: str = ""
    as_token: str = GENERATED_TOKEN
    hs_token: str = GENERATED_TOKEN
    max_body_size: int = 64 * 1024 * 1024
    transaction_retention_days: int = 7


@dataclass
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///bridge.db"


@dataclass
class RelayConfig:
    message_template: str = "{displayname}: {message}"


@dataclass
class BridgeConfig:
    username_template: str = "session_{userid}"
    displayname_template: str = "{displayname} (Session)"
    command_prefix: str = "!session"
    permissions: dict[str, str] = field(
        default_factory=lambda: {
            "*": "relay",
            EXAMPLE_DOMAIN: "user",
            "@admin:example.org": "admin",
        }
    )
    relay: RelayConfig = field(default_factory=RelayConfig)
    public_portals: bool = False
    secrets_key: str = ""
    phrase_message_timeout: float = 300.0
    outage_notice_after: float = 60.0


@dataclass
class SessionConfig:
    seed_nodes: list[str] = field(
        default_factory=lambda: [
            "https://seed1.getsession.org:4443/json_rpc",
            "https://seed2.getsession.org:4443/json_rpc",
            "https://seed3.getsession.org:4443/json_rpc",
        ]
    )
    # The same pins as bridge.session.snode.nodes.DEFAULT_SEEDS (a test keeps them equal).
    seed_cert_sha256: dict[str, str] = field(
        default_factory=lambda: {
            "https://seed1.getsession.org:4443/json_rpc": (
                "36ea0b253537988551ee856e4fd20d55011e9c8b27eaa2f34b8f32a0bdf04f2d"
            ),
            "https://seed2.getsession.org:4443/json_rpc": (
                "c5908dd4139acd96aedd1e45576597650809c8a5ea02af556d4853d45396e0e7"
            ),
            "https://seed3.getsession.org:4443/json_rpc": (
                "8a0af2c712342f22ce00e53c1601410ef8d84156aee0a9809c32f6f7efbe556e"
            ),
        }
    )
    file_server: str = "http://filev2.getsession.org"
    # Ed25519 key (hex) of a self-hosted file_server, for the #p= of its file URLs.
    file_server_ed25519_pubkey: str = ""
    poll_interval: float = 2.0
    community_poll_interval: float = 3.0
    # Hosts (names or addresses, no port) that the bridge may reach at internal addresses
    # (loopback, private, link-local) when a user bridges a community server on them or a
    # file is on them; file_server's host always may (README, Security).
    internal_hosts: list[str] = field(default_factory=list)


@dataclass
class LoggingConfig:
    level: str = "INFO"
    format: str = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class MetricsConfig:
    # Off by default; its own listener, never the appservice's port (docs/operations.md §5.4).
    enabled: bool = False
    listen_address: str = "127.0.0.1"
    port: int = 9464


@dataclass
class MigrationConfig:
    """Moving people from Session to Matrix (docs/migration.md)."""

    # Seconds a `link` code stays valid, and how many codes one person may ask for per hour.
    link_code_ttl: float = 900.0
    link_codes_per_hour: int = 5
    # Appended to the ghost's name of a Session ID linked to a Matrix account.
    moved_suffix: str = " (on Matrix)"
    # Community and group rooms' topics end with a line "Moved to Matrix: n of m people",
    # kept up to date (docs/migration.md §3); off: no such line (one written before is removed).
    topic_counts: bool = False
    # The day Session goes away (YYYY-MM-DD), for the days left in `migration`; "" = none.
    deadline: str = ""
    # Reminders before the deadline (docs/migration.md §5): the days before it, and the texts
    # with {days}, {moved}, {total}, {link}, {howto}; Session side only where `announce` is on.
    reminder_days: list[int] = field(default_factory=lambda: [30, 14, 7, 3, 1])
    reminder_template_session: str = (
        "Session shuts down in {days} days. {moved} of {total} people of this chat already "
        "moved to Matrix: {link}\n{howto}"
    )
    reminder_template_matrix: str = (
        "Session shuts down in {days} days: {moved} of {total} people here are on Matrix."
    )
    reminder_howto: str = (
        "How to move: install a Matrix app (for example Element), open the link above, join "
        "the room, then send `link <your Session ID>` there to the bridge bot."
    )
    # Days after the deadline before every portal is finalized (docs/migration.md §6), and
    # whether the stored recovery phrases of logins are deleted then.
    grace_days: int = 7
    delete_secrets_after: bool = True
    # Bridge-made Session identities (docs/migration.md §7): off, nobody can turn one on;
    # their Session name (``{displayname}``: the Matrix name); deleted by the global finalize.
    made_identities: bool = False
    made_identity_name: str = "{displayname} (Matrix)"
    delete_made_identities_after: bool = True


@dataclass
class CommunitiesConfig:
    """Community DMs and backfill (README, Community direct messages; Backfill)."""

    # Bridge the blinded DMs ("message requests") sent to the bot and to logins on bridged
    # community servers; off: posts say blocksCommunityMessageRequests.
    blinded_dms: bool = True
    # A newly bridged room brings over its newest posts: at most this many (0 none, at most
    # 256; -1 the whole history), and none older than backfill_days (0: no age limit).
    backfill_messages: int = 50
    backfill_days: float = 0.0


#: What the bot does when a Session group admin invites it (README, Group portals).
GROUP_BOT_INVITES = ("accept", "allowlist", "approve", "refuse")


@dataclass
class GroupsConfig:
    """Session groups v2 as portals (README, Group portals)."""

    # The bot invited to a group by a group admin: accept every invite, accept those of
    # allowed_inviters (refuse others), keep them pending until a bridge admin decides in
    # their management room (`groups pending|accept|decline`), or refuse.
    bot_invites: str = "approve"
    # Session ids whose invites of the bot are accepted with bot_invites: allowlist.
    allowed_inviters: list[str] = field(default_factory=list)
    # Group portal rooms anyone on the homeserver may join (else invite-only).
    public_portals: bool = False
    # A new group portal imports the messages its swarm still holds (up to 14 days), in
    # order with their original times: at most this many (0: none), oldest first.
    backfill_limit: int = 100
    # `create-group` by a Matrix user without a Session login acts as the bridge's own
    # Session identity (the bot), which becomes the new group's admin; off: refused.
    create_as_bot: bool = False
    # Session users invited to a group from Matrix can read its recent history (the group's
    # kept keys, "Share message history" in the Session apps); off: only what is sent after.
    invite_with_history: bool = True


@dataclass
class EncryptionConfig:
    """End-to-bridge encryption (README, Encryption; docs/matrix-side.md §5)."""

    # Work in encrypted rooms (else the bridge explains and leaves them, as before).
    allow: bool = False
    # Create new portal rooms encrypted (needs allow).
    default: bool = False
    # Refuse unencrypted rooms as portals, and create new ones encrypted (needs allow).
    require: bool = False
    # Answer key requests (m.room_key_request) from Matrix users' devices in the room; off:
    # a new device of theirs gets keys only for messages sent after it appeared.
    allow_key_sharing: bool = False
    # Keep the Megolm session when a member's devices change (off: a new session is made).
    disable_device_change_key_rotation: bool = False
    # Seconds an undecryptable event waits for its keys before its sender is told.
    decrypt_wait: float = 20.0


@dataclass
class Config:
    config_version: int = CONFIG_VERSION
    homeserver: HomeserverConfig = field(default_factory=HomeserverConfig)
    appservice: AppserviceConfig = field(default_factory=AppserviceConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    migration: MigrationConfig = field(default_factory=MigrationConfig)
    communities: CommunitiesConfig = field(default_factory=CommunitiesConfig)
    encryption: EncryptionConfig = field(default_factory=EncryptionConfig)
    groups: GroupsConfig = field(default_factory=GroupsConfig)

    @property
    def bot_mxid(self) -> str:
        return f"@{self.appservice.bot_username}:{self.homeserver.domain}"


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, quiet: bool = False
) -> Config:
    """Read ``path`` strictly into :class:`Config` and apply ``BRIDGE_*`` overrides.

    A file of an older config version is upgraded in memory, with a warning unless ``quiet``
    (``python -m bridge`` writes the upgrade back and reports it itself, see
    :func:`bridge.config_file.upgrade_file`). A relative SQLite path is taken relative to the
    folder of ``path`` (:func:`sqlite_relative_to`).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        upgraded = upgrade(raw)
    except ConfigVersionError as e:
        raise ConfigError(f"{path}: {e}") from e
    if upgraded is not None and not quiet:
        log.warning(
            "%s (in memory only; python -m bridge writes it back)", upgraded.summary(str(path))
        )
        for warning in upgraded.warnings:
            log.warning("%s", warning)
    config = build(Config, raw, "")
    apply_env_overrides(config, os.environ if environ is None else environ)
    check_values(config)
    config.database.url = sqlite_relative_to(config.database.url, path.resolve().parent)
    return config


def check_values(config: Config) -> None:
    """Values that have the right type but cannot work: :class:`ConfigError` naming the key."""
    for host in config.session.internal_hosts:
        if not _bare_host(host):
            raise ConfigError(
                f"session.internal_hosts lists host names or addresses (no scheme, port or "
                f"path), got {host!r}"
            )
    _check_migration(config.migration)
    _check_encryption(config.encryption)
    if config.groups.backfill_limit < 0:
        raise ConfigError("groups.backfill_limit is 0 (none) or more")
    if config.groups.bot_invites not in GROUP_BOT_INVITES:
        raise ConfigError(
            f"groups.bot_invites is one of {', '.join(GROUP_BOT_INVITES)}, "
            f"got {config.groups.bot_invites!r}"
        )
    backfill = config.communities
    if not -1 <= backfill.backfill_messages <= 256 or backfill.backfill_days < 0:
        raise ConfigError(
            "communities.backfill_messages is -1 (all), 0 (none) or up to 256, and "
            "communities.backfill_days 0 or more"
        )
    key = config.session.file_server_ed25519_pubkey
    if key and not valid_ed25519_key(key):
        raise ConfigError(
            f"session.file_server_ed25519_pubkey must be the file server's Ed25519 public key: "
            f"64 hex characters that are a valid Ed25519 point, got {key!r}"
        )


#: What ``encryption.allow`` needs (the ``e2be`` extra): distribution → its module names
#: (either will do: mautrix takes pycryptodome's ``Crypto`` or pycryptodomex's ``Cryptodome``).
E2BE_MODULES = {
    "python-olm": ("olm",),
    "pycryptodome": ("Crypto", "Cryptodome"),
    "unpaddedbase64": ("unpaddedbase64",),
}


def missing_e2be_modules() -> list[str]:
    """The distributions of the ``e2be`` extra that are not installed (found, not imported)."""
    return [
        dist
        for dist, modules in E2BE_MODULES.items()
        if all(importlib.util.find_spec(module) is None for module in modules)
    ]


def _check_encryption(encryption: EncryptionConfig) -> None:
    if (encryption.default or encryption.require) and not encryption.allow:
        raise ConfigError("encryption.default and encryption.require need encryption.allow")
    if encryption.allow and (missing := missing_e2be_modules()):
        raise ConfigError(
            f"encryption.allow is on but {', '.join(missing)} is not installed: install the "
            "e2be extra (pip install 'session-matrix-bridge[e2be]') or turn encryption.allow off"
        )
    if encryption.decrypt_wait < 0:
        raise ConfigError("encryption.decrypt_wait must be 0 or more seconds")


def _check_migration(migration: MigrationConfig) -> None:
    if migration.link_code_ttl < 60 or migration.link_codes_per_hour < 1:
        raise ConfigError(
            "migration.link_code_ttl must be at least 60 seconds and "
            "migration.link_codes_per_hour at least 1"
        )
    if migration.deadline:
        try:
            datetime.date.fromisoformat(migration.deadline)
        except ValueError:
            raise ConfigError(
                f"migration.deadline is a date like 2026-12-28, got {migration.deadline!r}"
            ) from None
    if migration.grace_days < 0 or any(d < 0 for d in migration.reminder_days):
        raise ConfigError("migration.grace_days and migration.reminder_days must be 0 or more")
    if "{displayname}" not in migration.made_identity_name:
        raise ConfigError("migration.made_identity_name must contain {displayname}")


def _bare_host(text: str) -> bool:
    """Whether ``text`` is a host name or an IP address alone (``[::1]`` too)."""
    if not text or any(c in text for c in "/@?# "):
        return False
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return ":" not in text and "[" not in text


def valid_ed25519_key(text: str) -> bool:
    """Whether ``text`` is 64 hex characters encoding a valid Ed25519 point."""
    if len(text) != 64 or any(c not in string.hexdigits for c in text):
        return False
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(bytes.fromhex(text)))


def sqlite_relative_to(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite file path made absolute against ``folder`` (the config
    file's), so the database does not depend on the working directory.

    SQLAlchemy's form is ``sqlite[+driver]:///relative/path`` (three slashes) and
    ``sqlite[+driver]:////absolute/path`` (four); in-memory databases, ``file:`` URIs and
    other backends are returned unchanged.
    """
    scheme, sep, rest = url.partition(":///")
    if not sep or not (scheme == "sqlite" or scheme.startswith("sqlite+")):
        return url
    path, question, query = rest.partition("?")
    if path in ("", ":memory:") or path.startswith(("/", "file:")):
        return url
    return f"{scheme}:///{folder / path}{question}{query}"


def build(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    """Make dataclass ``cls`` from a mapping; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(sorted(map(str, unknown)))} in {where or 'top level'}"
        )
    values = {name: coerce(hints[name], raw[name], f"{where}{name}") for name in names & set(raw)}
    return cls(**values)


def coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``hint`` (dataclass, dict, list or scalar)."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping")
        return build(typing.cast(type[Any], hint), value, f"{where}.")
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping")
        key_t, val_t = typing.get_args(hint)
        return {
            coerce(key_t, k, where): coerce(val_t, v, f"{where}.{k}") for k, v in value.items()
        }
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        (item_t,) = typing.get_args(hint)
        return [coerce(item_t, v, f"{where}[]") for v in value]
    if isinstance(hint, types.UnionType):
        raise ConfigError(f"{where}: unsupported annotation {hint}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be of type {hint.__name__}, got {value!r}")
    return value


def apply_env_overrides(config: Config, environ: Mapping[str, str]) -> None:
    """Apply ``BRIDGE_<SECTION>_<KEY>=value`` overrides (value parsed as YAML).

    A ``BRIDGE_*`` variable that names no config key (and is not one of :data:`OTHER_ENV`)
    is an error.
    """
    for env_name, text in sorted(environ.items()):
        if not env_name.startswith(ENV_PREFIX) or env_name in OTHER_ENV:
            continue
        target = _find_override_target(config, env_name[len(ENV_PREFIX) :].lower())
        if target is None:
            raise ConfigError(
                f"environment variable {env_name} names no config key (overrides are "
                "BRIDGE_<SECTION>_<KEY>, e.g. BRIDGE_HOMESERVER_DOMAIN; see config.example.yaml)"
            )
        obj, name, hint = target
        try:
            parsed = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{env_name}: not valid YAML: {e}") from e
        if parsed is None:
            parsed = ""
        setattr(obj, name, coerce(hint, parsed, env_name))


def _find_override_target(config: Config, rest: str) -> tuple[Any, str, Any] | None:
    for section in dataclasses.fields(config):
        prefix = section.name + "_"
        obj = getattr(config, section.name)
        if not rest.startswith(prefix) or not dataclasses.is_dataclass(obj):
            continue
        key = rest[len(prefix) :]
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            if key == f.name:
                return obj, f.name, hints[f.name]
            if dataclasses.is_dataclass(hints[f.name]) and key.startswith(f.name + "_"):
                sub = getattr(obj, f.name)
                subkey = key[len(f.name) + 1 :]
                sub_hints = typing.get_type_hints(type(sub))
                if subkey in sub_hints:
                    return sub, subkey, sub_hints[subkey]
    return None


def to_dict(config: Config) -> dict[str, Any]:
    """The configuration as plain data, e.g. for writing it back to YAML."""
    return dataclasses.asdict(config)


def problems(config: Config) -> list[str]:
    """What must be fixed before the bridge may start (placeholders, missing tokens)."""
    found = placeholder_problems(config)
    for name in ("as_token", "hs_token"):
        if getattr(config.appservice, name) in ("", GENERATED_TOKEN):
            found.append(f"appservice.{name} is not set: generate a registration with -g")
    if not config.bridge.secrets_key:
        found.append("bridge.secrets_key is empty: run with -g or set BRIDGE_BRIDGE_SECRETS_KEY")
    return found


def placeholder_problems(config: Config) -> list[str]:
    """What the operator must edit before a registration can be written: everything
    :func:`problems` reports except the tokens and the secrets key, which ``-g`` generates."""
    found = []
    if config.homeserver.domain == EXAMPLE_DOMAIN:
        found.append("homeserver.domain is still the example value 'example.org'")
    if any(EXAMPLE_DOMAIN in key for key in config.bridge.permissions):
        found.append("bridge.permissions still names example.org: set your own users and domain")
    for who, level in config.bridge.permissions.items():
        if level not in PERMISSION_LEVELS:
            found.append(f"bridge.permissions[{who!r}] = {level!r}: use relay, user or admin")
    if "{userid}" not in config.bridge.username_template:
        found.append("bridge.username_template must contain {userid}")
    return found

from __future__ import annotations

import dataclasses
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from bridge import config_file, config_upgrade
from bridge.config import Config, ConfigError, load_config, problems, sqlite_relative_to, to_dict
from bridge.config_upgrade import CONFIG_VERSION, Migration, Remove, Rename

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for key, value in tree.items():
        found.add(prefix + key)
        if isinstance(value, dict) and not key.endswith(("permissions", "seed_cert_sha256")):
            found |= _keys(value, f"{prefix}{key}.")
    return found


def test_example_documents_exactly_the_typed_keys() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert _keys(example) == _keys(to_dict(Config()))


def test_example_values_are_the_defaults() -> None:
    expected = Config()
    # The default SQLite file is relative: it lies next to the config file.
    expected.database.url = f"sqlite+aiosqlite:///{EXAMPLE.parent / 'bridge.db'}"
    assert load_config(EXAMPLE, environ={}) == expected


def test_every_example_key_has_a_comment_nearby() -> None:
    # Every top-level section is introduced, and no key is left undocumented in bulk.
    text = EXAMPLE.read_text()
    assert text.count("#") > 40
    for section in (f.name for f in dataclasses.fields(Config) if f.name != "config_version"):
        assert f"\n{section}:\n" in text


def test_example_is_at_the_current_config_version() -> None:
    text = EXAMPLE.read_text()
    comment = f"# {config_upgrade.VERSION_COMMENT}\nconfig_version: {CONFIG_VERSION}\n"
    assert comment in text
    assert yaml.safe_load(text)["config_version"] == CONFIG_VERSION == Config().config_version


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key.*adress"):
        load_config(write(tmp_path, "homeserver: {adress: http://x}\n"), environ={})


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"appservice.port must be of type int"):
        load_config(write(tmp_path, "appservice: {port: many}\n"), environ={})


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(write(tmp_path, "homeserver: [\n"), environ={})


def test_environment_overrides_every_kind_of_key(tmp_path: Path) -> None:
    env = {
        "BRIDGE_HOMESERVER_DOMAIN": "example.com",
        "BRIDGE_APPSERVICE_PORT": "4242",
        "BRIDGE_HOMESERVER_VERIFY_SSL": "false",
        "BRIDGE_SESSION_POLL_INTERVAL": "5",
        "BRIDGE_BRIDGE_PERMISSIONS": '{"example.com": admin}',
        "BRIDGE_BRIDGE_RELAY_MESSAGE_TEMPLATE": "<{displayname}> {message}",
        "BRIDGE_SESSION_SEED_NODES": "[https://seed.test/json_rpc]",
        "UNRELATED": "x",
    }
    config = load_config(write(tmp_path, "{}\n"), environ=env)
    assert config.homeserver.domain == "example.com"
    assert config.appservice.port == 4242
    assert config.homeserver.verify_ssl is False
    assert config.session.poll_interval == 5.0
    assert config.bridge.permissions == {"example.com": "admin"}
    assert config.bridge.relay.message_template == "<{displayname}> {message}"
    assert config.session.seed_nodes == ["https://seed.test/json_rpc"]


ED25519_KEY = "b8eef9821445ae16e2e97ef8aa6fe782fd11ad5253cd6723b281341dba22e371"
X25519_KEY = "09324794aa9c11948189762d198c618148e9136ac9582068180661208927ef34"


def test_the_file_server_ed25519_key_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, f"session: {{file_server_ed25519_pubkey: {ED25519_KEY.upper()}}}\n")
    assert load_config(path, environ={}).session.file_server_ed25519_pubkey == ED25519_KEY.upper()
    assert (
        load_config(write(tmp_path, "{}\n"), environ={}).session.file_server_ed25519_pubkey == ""
    )
    # the X25519 key the old file_server_pubkey held is not a valid Ed25519 point
    for bad in (X25519_KEY, ED25519_KEY[:-1], "z" * 64, "00" * 32):
        path = write(tmp_path, f"session: {{file_server_ed25519_pubkey: '{bad}'}}\n")
        with pytest.raises(ConfigError, match=r"session.file_server_ed25519_pubkey must be"):
            load_config(path, environ={})
    env = {"BRIDGE_SESSION_FILE_SERVER_ED25519_PUBKEY": X25519_KEY}
    with pytest.raises(ConfigError, match="valid Ed25519 point"):
        load_config(write(tmp_path, "{}\n"), environ=env)


def test_internal_hosts_are_bare_hosts(tmp_path: Path) -> None:
    good = "session: {internal_hosts: ['10.0.0.5', '[fd00::5]', 'fd00::6', sogs.lan]}\n"
    hosts = load_config(write(tmp_path, good), environ={}).session.internal_hosts
    assert hosts == ["10.0.0.5", "[fd00::5]", "fd00::6", "sogs.lan"]
    assert load_config(write(tmp_path, "{}\n"), environ={}).session.internal_hosts == []
    for bad in ("http://10.0.0.5", "10.0.0.5:8080", "sogs.lan/x", "", "[sogs.lan]"):
        path = write(tmp_path, f"session: {{internal_hosts: ['{bad}']}}\n")
        with pytest.raises(ConfigError, match=r"session\.internal_hosts lists host names"):
            load_config(path, environ={})


def test_environment_override_with_wrong_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BRIDGE_APPSERVICE_PORT"):
        load_config(write(tmp_path, "{}\n"), environ={"BRIDGE_APPSERVICE_PORT": "[1]"})


def test_placeholders_are_reported() -> None:
    found = problems(Config())
    assert any("homeserver.domain" in p for p in found)
    assert any("as_token" in p for p in found)
    assert any("permissions" in p for p in found)


def test_a_complete_config_has_no_problems() -> None:
    config = Config()
    config.homeserver.domain = "example.com"
    config.appservice.as_token = "a" * 64
    config.appservice.hs_token = "b" * 64
    config.bridge.permissions = {"example.com": "user"}
    config.bridge.secrets_key = "A" * 44
    assert problems(config) == []


def test_unknown_permission_level_is_reported() -> None:
    config = Config()
    config.bridge.permissions = {"example.com": "superuser"}
    assert any("superuser" in p for p in problems(config))


def test_every_default_seed_is_pinned() -> None:
    session = Config().session
    assert set(session.seed_nodes) == set(session.seed_cert_sha256)
    assert all(len(bytes.fromhex(pin)) == 32 for pin in session.seed_cert_sha256.values())


def test_config_pins_match_the_session_clients_defaults() -> None:
    from bridge.session.snode.nodes import DEFAULT_SEEDS

    assert {s.url: s.cert_sha256 for s in DEFAULT_SEEDS} == Config().session.seed_cert_sha256


def test_unknown_environment_variable_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "{}\n")
    for name in ("BRIDGE_HOMESERVER_DOMIAN", "BRIDGE_TEST_POSTGRES_URL", "BRIDGE_CONFIG_VERSION"):
        with pytest.raises(ConfigError, match=name):
            load_config(path, environ={name: "x"})
    # The bridge's own variables that are not config keys are not overrides.
    expected = Config()
    expected.database.url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    assert load_config(path, environ={"BRIDGE_CONFIG": "x", "BRIDGE_ALEMBIC_DIR": "y"}) == expected


# A config of version 0 (before config_version existed), edited by its operator.
OLD_CONFIG = """\
# The bridge of chat.example.com.

homeserver:
  # Where Synapse is.
  address: http://localhost:8008
  domain: chat.example.com  # ours

bridge:
  permissions:
    chat.example.com: user
  # The day Session goes away.
  migration_deadline: "2026-06-01"

session:
  # The file server and its key.
  file_server: http://filev2.getsession.org
  file_server_pubkey: 09324794aa9c11948189762d198c618148e9136ac9582068180661208927ef34
  # Slow polls.
  poll_interval: 5
  # Onion routing is not implemented; requests go directly to the service nodes.
  onion_requests: true

logging:
  # Chatty.
  level: DEBUG
"""


def test_old_config_is_upgraded_in_place_keeping_comments(tmp_path: Path) -> None:
    path = write(tmp_path, OLD_CONFIG)
    done = config_file.upgrade_file(path)
    assert done is not None
    assert (done.from_version, done.to_version) == (0, CONFIG_VERSION)
    assert done.changes == (
        "removed session.onion_requests",
        "removed session.file_server_pubkey",
        "removed bridge.migration_deadline",
    )
    text = path.read_text()
    for kept in (
        "# The bridge of chat.example.com.\n",
        "# Where Synapse is.\n",
        "domain: chat.example.com  # ours\n",
        "# The file server and its key.\n  file_server: http://filev2.getsession.org\n",
        "# Slow polls.\n  poll_interval: 5\n\nlogging:\n  # Chatty.\n  level: DEBUG\n",
        "  permissions:\n    chat.example.com: user\n\nsession:\n",
        f"# {config_upgrade.VERSION_COMMENT}\nconfig_version: {CONFIG_VERSION}\n\nhomeserver:\n",
    ):
        assert kept in text
    # The removed keys go with the comments that described them.
    for gone in ("onion", "Onion", "file_server_pubkey", "migration_deadline", "goes away"):
        assert gone not in text
    config = load_config(path, environ={})
    assert config.homeserver.domain == "chat.example.com"
    assert config.session.poll_interval == 5.0
    assert config.logging.level == "DEBUG"
    # Current now: nothing more to do.
    assert config_file.upgrade_file(path) is None
    assert path.read_text() == text


def test_removed_settings_that_had_an_effect_are_warned_about(tmp_path: Path) -> None:
    done = config_file.upgrade_file(write(tmp_path, OLD_CONFIG))
    assert done is not None
    (onion, deadline) = done.warnings
    assert onion.startswith("session.onion_requests (True) was removed: onion routing is not")
    assert "\n" not in onion
    assert deadline.startswith("bridge.migration_deadline ('2026-06-01') was removed")
    # The defaults had no effect to lose: no warning.
    default = OLD_CONFIG.replace("onion_requests: true", "onion_requests: false")
    default = default.replace('"2026-06-01"', '""')
    done = config_file.upgrade_file(write(tmp_path, default))
    assert done is not None and done.warnings == ()


def test_old_config_loads_upgraded_in_memory_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, OLD_CONFIG)
    config = load_config(path, environ={})
    assert config.config_version == CONFIG_VERSION
    assert path.read_text() == OLD_CONFIG
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("onion routing is not supported" in w for w in warnings)
    assert any("in memory only" in w for w in warnings)


def test_config_of_a_newer_bridge_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"config_version: {CONFIG_VERSION + 1}\n")
    with pytest.raises(ConfigError, match="newer bridge"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="newer bridge"):
        config_file.upgrade_file(path)


def test_invalid_old_config_is_not_rewritten(tmp_path: Path) -> None:
    path = write(tmp_path, "session:\n  onion_requests: true\n  poll_intervall: 3\n")
    assert config_file.upgrade_file(path) is None
    assert "onion_requests" in path.read_text()
    with pytest.raises(ConfigError, match="poll_intervall"):
        load_config(path, environ={})


def test_renames_keep_place_and_comments() -> None:
    rt = YAML()
    tree = rt.load("a:\n  # about x\n  x: 1  # eol\n  # about y\n  y: 2\nb:\n  z: 3\n")
    migrations = (
        Migration(1, (Rename("a.x", "a.renamed"),)),
        Migration(2, (Rename("b.z", "a.moved"), Remove("b", None, "empty"))),
    )
    done = config_upgrade.upgrade(tree, migrations)
    assert done is not None
    assert done.changes == ("renamed a.x to a.renamed", "renamed b.z to a.moved", "removed b")
    out = StringIO()
    rt.dump(tree, out)
    assert out.getvalue() == (
        "# Layout version of this file. The bridge upgrades older files itself; keep it.\n"
        "config_version: 2\n\n"
        "a:\n  # about x\n  renamed: 1 # eol\n  # about y\n  y: 2\n  moved: 3\n"
    )
    with pytest.raises(config_upgrade.ConfigVersionError, match=r"both a\.x and its new name"):
        config_upgrade.upgrade({"a": {"x": 1, "y": 2}}, (Migration(1, (Rename("a.x", "a.y"),)),))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///bridge.db", "sqlite+aiosqlite:////etc/bridge/bridge.db"),
        (
            "sqlite+aiosqlite:///data/b.db?timeout=5",
            "sqlite+aiosqlite:////etc/bridge/data/b.db?timeout=5",
        ),
        ("sqlite:///../b.db", "sqlite:////etc/bridge/../b.db"),
        ("sqlite+aiosqlite:////var/lib/b.db", "sqlite+aiosqlite:////var/lib/b.db"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ],
)
def test_relative_sqlite_paths_are_relative_to_the_config_folder(url: str, expected: str) -> None:
    assert sqlite_relative_to(url, Path("/etc/bridge")) == expected


def test_loaded_sqlite_path_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "database: {url: 'sqlite+aiosqlite:///state/bridge.db'}\n")
    monkeypatch.chdir("/")
    url = load_config(path, environ={}).database.url
    assert url == f"sqlite+aiosqlite:///{tmp_path}/state/bridge.db"
    # An override from the environment is read the same way.
    env = {"BRIDGE_DATABASE_URL": "sqlite+aiosqlite:///other.db"}
    assert (
        load_config(path, environ=env).database.url == f"sqlite+aiosqlite:///{tmp_path}/other.db"
    )

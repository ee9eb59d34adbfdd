from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import Config, ConfigError, load_config, problems, to_dict

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
    assert load_config(EXAMPLE, environ={}) == Config()


def test_every_example_key_has_a_comment_nearby() -> None:
    # Every top-level section is introduced, and no key is left undocumented in bulk.
    text = EXAMPLE.read_text()
    assert text.count("#") > 40
    for section in (f.name for f in dataclasses.fields(Config)):
        assert f"\n{section}:\n" in text


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

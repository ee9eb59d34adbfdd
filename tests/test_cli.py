"""``python -m bridge``: first run, registration generation, refusals and exit codes."""

from __future__ import annotations

import asyncio
import logging
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge import __main__ as cli
from bridge import config_file
from bridge.config import load_config
from bridge.db import migrate
from bridge.exitcodes import ExitCode
from bridge.matrix.startup import BotAuthFailed, HomeserverUnreachable, PingFailed

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def configured(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    text = EXAMPLE.read_text().replace("example.org", "chat.example.com")
    path.write_text(text)
    return path


def test_missing_config_is_created_from_the_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    assert cli.main(["-c", str(path)]) == ExitCode.CONFIG_CREATED
    assert path.read_text() == EXAMPLE.read_text()
    assert "Edit it" in capsys.readouterr().err


def test_placeholder_config_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text())
    assert cli.main(["-c", str(path)]) == ExitCode.PLACEHOLDER_CONFIG
    assert "example.org" in caplog.text and "as_token" in caplog.text


def test_invalid_config_has_its_own_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("homeserver: {domian: x}\n")
    assert cli.main(["-c", str(path)]) == ExitCode.BAD_CONFIG
    assert "domian" in capsys.readouterr().err


def test_generate_registration_writes_fresh_tokens_and_keeps_comments(tmp_path: Path) -> None:
    config_path, reg_path = configured(tmp_path), tmp_path / "registration.yaml"
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    config = load_config(config_path, environ={})
    registration = yaml.safe_load(reg_path.read_text())
    assert registration["as_token"] == config.appservice.as_token != "generate"
    assert registration["hs_token"] == config.appservice.hs_token != config.appservice.as_token
    assert registration["namespaces"]["users"][1]["regex"] == r"^@session_.*:chat\.example\.com$"
    assert len(config.bridge.secrets_key) == 44
    # The operator's comments survive, and the secrets are private to the bridge's user.
    assert "# How the homeserver reaches the bridge" in config_path.read_text()
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(reg_path.stat().st_mode) == 0o600
    first_token = config.appservice.as_token
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    assert load_config(config_path, environ={}).appservice.as_token != first_token
    assert load_config(config_path, environ={}).bridge.secrets_key == config.bridge.secrets_key


def test_migrate_only_brings_the_database_to_head(tmp_path: Path) -> None:
    config_path = configured(tmp_path)
    db = tmp_path / "bridge.db"
    text = config_path.read_text().replace(
        "sqlite+aiosqlite:///bridge.db", f"sqlite+aiosqlite:///{db}"
    )
    config_path.write_text(text)
    assert cli.main(["-c", str(config_path), "--migrate-only"]) == ExitCode.OK
    url = f"sqlite+aiosqlite:///{db}"
    assert asyncio.run(migrate.current_revision(url)) == migrate.head_revision()


def test_old_config_is_written_back_upgraded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db = tmp_path / "bridge.db"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"# mine\ndatabase:\n  url: sqlite+aiosqlite:///{db}  # here\n"
        "session:\n  # off\n  onion_requests: true\n"
    )
    assert cli.main(["-c", str(path), "--migrate-only"]) == ExitCode.OK
    text = path.read_text()
    assert "onion" not in text and "# mine" in text and "  # here" in text
    assert "config_version: " in text
    upgraded = [r for r in caplog.records if r.getMessage().startswith("Upgraded ")]
    assert [r.levelname for r in upgraded] == ["INFO"]
    assert "removed session.onion_requests" in upgraded[0].getMessage()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "onion routing is not supported" in warning


def test_config_that_cannot_be_written_back_is_used_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    text = f"database: {{url: 'sqlite+aiosqlite:///{tmp_path / 'b.db'}'}}\n"
    path.write_text(text + "session: {onion_requests: true}\n")

    def read_only(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(config_file, "_atomic_write", read_only)
    assert cli.main(["-c", str(path), "--migrate-only"]) == ExitCode.OK
    assert "onion_requests" in path.read_text()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("could not write it back" in w and "Permission denied" in w for w in warnings)
    assert any("onion routing is not supported" in w for w in warnings)


def test_unknown_bridge_environment_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRIDGE_HOMESERVER_ADRESS", "http://x")
    assert cli.main(["-c", str(configured(tmp_path)), "--migrate-only"]) == ExitCode.BAD_CONFIG
    assert "BRIDGE_HOMESERVER_ADRESS" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (migrate.DatabaseTooNew("ffff"), ExitCode.DATABASE),
        (HomeserverUnreachable("no"), ExitCode.HOMESERVER_UNREACHABLE),
        (BotAuthFailed("no"), ExitCode.BOT_AUTH_FAILED),
        (PingFailed("no"), ExitCode.PING_FAILED),
        (RuntimeError("bug"), ExitCode.UNEXPECTED),
    ],
)
def test_startup_failures_map_to_distinct_exit_codes(
    error: Exception, code: ExitCode, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def failing_serve(config: object) -> None:
        raise error

    monkeypatch.setattr(cli, "_serve", failing_serve)
    assert cli.run(load_config(configured(tmp_path), environ={})) == code


def test_exit_codes_are_distinct() -> None:
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))


def test_module_runs_as_a_program(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "-c", str(tmp_path / "new.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == ExitCode.CONFIG_CREATED
    assert re.search(r"Created .*new\.yaml", proc.stderr)

"""``python -m bridge``: first run, registration generation, refusals and exit codes."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
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


def test_generate_registration_twice_keeps_the_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What run.sh does after the operator edits the config: -g again. The homeserver still
    # has the first registration, so the tokens must not change (they used to be rotated,
    # which locked the bridge out with exit code 7 until the homeserver was restarted).
    config_path, reg_path = configured(tmp_path), tmp_path / "registration.yaml"
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    assert "restart the homeserver" in capsys.readouterr().out
    first, written = load_config(config_path, environ={}), reg_path.read_text()
    config_path.write_text(config_path.read_text().replace("level: INFO", "level: DEBUG"))
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    again = load_config(config_path, environ={})
    assert again.logging.level == "DEBUG"
    assert (again.appservice.as_token, again.appservice.hs_token) == (
        first.appservice.as_token,
        first.appservice.hs_token,
    )
    assert again.bridge.secrets_key == first.bridge.secrets_key
    assert reg_path.read_text() == written  # not even rewritten
    assert "need not be restarted" in capsys.readouterr().out


def test_generate_registration_rewrites_it_when_the_config_changes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, reg_path = configured(tmp_path), tmp_path / "registration.yaml"
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    before = yaml.safe_load(reg_path.read_text())
    capsys.readouterr()
    text = config_path.read_text().replace("http://localhost:29340", "http://10.0.0.5:29340")
    config_path.write_text(text)
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    after = yaml.safe_load(reg_path.read_text())
    assert after["url"] == "http://10.0.0.5:29340"
    assert {k: v for k, v in after.items() if k != "url"} == {
        k: v for k, v in before.items() if k != "url"
    }  # same tokens, same sender_localpart
    assert "restart the homeserver" in capsys.readouterr().out


def test_rotate_tokens_replaces_both_tokens(tmp_path: Path) -> None:
    config_path, reg_path = configured(tmp_path), tmp_path / "registration.yaml"
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    first = load_config(config_path, environ={})
    args = ["-c", str(config_path), "-g", "--rotate-tokens", "-r", str(reg_path)]
    assert cli.main(args) == ExitCode.OK
    rotated = load_config(config_path, environ={})
    registration = yaml.safe_load(reg_path.read_text())
    assert rotated.appservice.as_token not in ("generate", first.appservice.as_token)
    assert rotated.appservice.hs_token not in ("generate", first.appservice.hs_token)
    assert registration["as_token"] == rotated.appservice.as_token
    assert registration["hs_token"] == rotated.appservice.hs_token
    assert rotated.bridge.secrets_key == first.bridge.secrets_key  # never rotated
    with pytest.raises(SystemExit):  # only with -g, never while starting the bridge
        cli.main(["-c", str(config_path), "--rotate-tokens"])
    assert load_config(config_path, environ={}) == rotated


def test_no_registration_for_a_placeholder_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The first run used to write a registration for example.org (and tokens into the file).
    config_path, reg_path = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    assert cli.main(["-c", str(config_path)]) == ExitCode.CONFIG_CREATED
    args = ["-c", str(config_path), "-g", "-r", str(reg_path)]
    assert cli.main(args) == ExitCode.PLACEHOLDER_CONFIG
    assert not reg_path.exists()
    assert config_path.read_text() == EXAMPLE.read_text()
    assert "homeserver.domain" in caplog.text and "permissions" in caplog.text
    # Domain set, permissions still the example's: still no registration.
    config_path.write_text(EXAMPLE.read_text().replace("domain: example.org", "domain: a.b"))
    assert cli.main(args) == ExitCode.PLACEHOLDER_CONFIG
    assert not reg_path.exists()
    config_path.write_text(EXAMPLE.read_text().replace("example.org", "a.b"))
    assert cli.main(args) == ExitCode.OK
    assert yaml.safe_load(reg_path.read_text())["namespaces"]["users"][0]["regex"] == (
        r"^@sessionbot:a\.b$"
    )


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


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready_to_run(tmp_path: Path, database_url: str) -> Path:
    """A complete config (tokens generated by -g) using ``database_url``."""
    config_path = configured(tmp_path)
    text = config_path.read_text().replace("sqlite+aiosqlite:///bridge.db", database_url)
    config_path.write_text(text)
    reg_path = tmp_path / "registration.yaml"
    assert cli.main(["-c", str(config_path), "-g", "-r", str(reg_path)]) == ExitCode.OK
    return config_path


def run_bridge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql+asyncpg://bridge:hunter2@127.0.0.1:{port}/bridge",
            r"cannot open the database postgresql\+asyncpg://bridge:\*\*\*@127\.0\.0\.1:\d+/bridge"
            r" \(database\.url\): .*(refused|failed)",
        ),
        (
            "sqlite+aiosqlite:///{tmp}/no/such/dir/bridge.db",
            r"cannot open the database .*: the directory \S+/no/such/dir does not exist",
        ),
    ],
    ids=["postgresql-closed-port", "sqlite-missing-directory"],
)
def test_unreachable_database_is_one_log_line_and_its_own_exit_code(
    tmp_path: Path, url: str, says: str
) -> None:
    # The bridge used to print a 100-176-line traceback and exit 1.
    config_path = ready_to_run(tmp_path, url.format(port=closed_port(), tmp=tmp_path))
    proc = run_bridge("-c", str(config_path))
    assert proc.returncode == ExitCode.DATABASE_UNREACHABLE == 10, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(r" ERROR bridge: " + says, lines[0]), lines[0]
    assert "hunter2" not in proc.stderr
    # --migrate-only says the same.
    proc = run_bridge("-c", str(config_path), "--migrate-only")
    assert proc.returncode == ExitCode.DATABASE_UNREACHABLE
    assert len(proc.stderr.splitlines()) == 1 and re.search(says, proc.stderr), proc.stderr


def test_relative_sqlite_path_is_next_to_the_config_file(tmp_path: Path) -> None:
    # The example's sqlite+aiosqlite:///bridge.db, run from another working directory.
    folder, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    config_path = configured(folder)
    proc = run_bridge("-c", str(config_path), "--migrate-only", cwd=elsewhere)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert (folder / "bridge.db").is_file()
    assert list(elsewhere.iterdir()) == []
    url = f"sqlite+aiosqlite:///{folder / 'bridge.db'}"
    assert asyncio.run(migrate.current_revision(url)) == migrate.head_revision()

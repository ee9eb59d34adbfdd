"""``scripts/run.sh`` as an operator uses it: first run, edit, run again, edit again.

The virtualenv is a stand-in whose ``python`` records ``-m pip`` calls (and does not install)
and hands everything else to the interpreter running the tests, where the bridge is
installed; so the script runs unchanged and offline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge.config import load_config
from bridge.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent


class Operator:
    def __init__(self, tmp_path: Path) -> None:
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.venv = tmp_path / "venv"
        self.pip_calls = tmp_path / "pip-calls"
        python = self.venv / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(
            "#!/usr/bin/env bash\n"
            'if [ "$1" = -m ] && [ "$2" = pip ]; then\n'
            f'    echo "$*" >>{self.pip_calls}\n'
            "    exit 0\n"
            "fi\n"
            f'exec {sys.executable} "$@"\n'
        )
        python.chmod(0o755)

    @property
    def config(self) -> Path:
        return self.work / "config.yaml"

    @property
    def registration(self) -> Path:
        return self.work / "registration.yaml"

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "SMB_"))}
        env["SMB_VENV"] = str(self.venv)
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / "run.sh")],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def edit(self, old: str, new: str) -> None:
        text = self.config.read_text()
        assert old in text
        self.config.write_text(text.replace(old, new))

    def installs(self) -> int:
        return len(self.pip_calls.read_text().splitlines()) if self.pip_calls.exists() else 0


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    return Operator(tmp_path)


def test_run_script_from_first_run_to_an_unrelated_edit(operator: Operator) -> None:
    # First run: the config is created; no registration for example.org is written.
    first = operator.run()
    assert first.returncode == ExitCode.PLACEHOLDER_CONFIG, first.stderr
    assert "Edit config.yaml" in first.stdout
    assert operator.config.exists() and not operator.registration.exists()
    assert "as_token: generate" in operator.config.read_text()
    assert operator.installs() == 1

    # Edited: the registration is written, and the script says the homeserver must read it.
    operator.edit("example.org", "chat.example.com")
    second = operator.run()
    assert second.returncode == 0, second.stderr
    assert "restart the homeserver" in second.stdout
    registration = operator.registration.read_text()
    tokens = load_config(operator.config, environ={}).appservice
    assert yaml.safe_load(registration)["as_token"] == tokens.as_token != "generate"

    # An edit the registration does not depend on: same registration, same tokens, no
    # reinstall, and the bridge is started (it stops at once: its database folder is missing).
    operator.edit("poll_interval: 2.0", "poll_interval: 5.0")
    operator.edit("sqlite+aiosqlite:///bridge.db", "sqlite+aiosqlite:///missing/bridge.db")
    third = operator.run()
    assert third.returncode == ExitCode.DATABASE_UNREACHABLE, third.stdout + third.stderr
    assert "need not be restarted" in third.stdout
    assert "the directory" in third.stderr and "missing does not exist" in third.stderr
    assert operator.registration.read_text() == registration
    again = load_config(operator.config, environ={}).appservice
    assert (again.as_token, again.hs_token) == (tokens.as_token, tokens.hs_token)
    assert operator.installs() == 1

    # An edit the registration depends on: rewritten with the same tokens, and the script
    # stops to say the homeserver must be restarted instead of starting a bridge it cannot
    # reach yet.
    operator.edit("address: http://localhost:29340", "address: http://10.1.2.3:29340")
    fourth = operator.run()
    assert fourth.returncode == 0, fourth.stderr
    assert "restart the homeserver" in fourth.stdout
    rewritten = yaml.safe_load(operator.registration.read_text())
    assert rewritten["url"] == "http://10.1.2.3:29340"
    assert (rewritten["as_token"], rewritten["hs_token"]) == (tokens.as_token, tokens.hs_token)
    assert operator.installs() == 1

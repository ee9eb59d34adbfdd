"""``encryption.*`` settings: what they need, and the refusal when python-olm is missing
(README, Encryption)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from bridge import __main__ as cli
from bridge import config as config_module
from bridge.config import ConfigError, load_config
from bridge.exitcodes import ExitCode
from tests.test_cli import configured


def _without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == module else real(name, *args)

    monkeypatch.setattr(config_module.importlib.util, "find_spec", find_spec)


def _with_encryption(tmp_path: Path, settings: str) -> Path:
    path = configured(tmp_path)
    path.write_text(path.read_text().replace("  allow: false\n", settings, 1))
    return path


def test_encryption_without_python_olm_is_one_config_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _with_encryption(tmp_path, "  allow: true\n")
    _without(monkeypatch, "olm")
    assert cli.main(["-c", str(path), "--migrate-only"]) == ExitCode.BAD_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "encryption.allow is on but python-olm is not installed" in err[0]
    assert "session-matrix-bridge[e2be]" in err[0]


def test_encryption_off_does_not_need_python_olm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "olm")
    assert load_config(configured(tmp_path), environ={}).encryption.allow is False


def test_either_pycryptodome_flavour_will_do(monkeypatch: pytest.MonkeyPatch) -> None:
    present = {"olm", "Cryptodome", "unpaddedbase64"}

    def find_spec(name: str, *args: Any) -> Any:
        return object() if name in present else None

    monkeypatch.setattr(config_module.importlib.util, "find_spec", find_spec)
    assert config_module.missing_e2be_modules() == []
    present.discard("Cryptodome")
    assert config_module.missing_e2be_modules() == ["pycryptodome"]


def test_default_and_require_need_allow(tmp_path: Path) -> None:
    path = _with_encryption(tmp_path, "  allow: false\n")
    text = path.read_text().replace("  require: false\n", "  require: true\n", 1)
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"need encryption\.allow"):
        load_config(path, environ={})

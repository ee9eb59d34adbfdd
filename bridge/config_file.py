"""Reading and writing the configuration file on disk.

Writes go through ruamel.yaml's round-trip mode so the operator's comments and layout survive
when the bridge saves generated tokens into the file or upgrades it to the current config
version.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from io import StringIO
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError as RoundTripError

from bridge import resources
from bridge.config import Config, ConfigError, build
from bridge.config_upgrade import ConfigVersionError, Upgrade, upgrade


def example_config_text() -> str:
    """The commented example config (installed with the package, or the source tree's)."""
    return resources.read_text(resources.EXAMPLE_CONFIG)


def create_from_example(path: Path) -> None:
    """Write the example config to ``path`` (which must not exist)."""
    _atomic_write(path, example_config_text())


def _round_trip() -> YAML:
    # The layout of config.example.yaml: lists indented under their key, no line wrapping.
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    return rt


def _dump(rt: YAML, data: Any) -> str:
    out = StringIO()
    rt.dump(data, out)
    return out.getvalue()


def update_values(path: Path, updates: Mapping[tuple[str, str], Any]) -> None:
    """Set ``section.key`` values in the file at ``path``, keeping comments and order."""
    rt = _round_trip()
    data = rt.load(path.read_text(encoding="utf-8"))
    for (section, key), value in updates.items():
        data.setdefault(section, {})[key] = value
    _atomic_write(path, _dump(rt, data))


class UpgradeNotWritten(Exception):
    """The config was upgraded, but the file could not be rewritten (read-only, no space)."""

    def __init__(self, upgrade: Upgrade, error: OSError) -> None:
        super().__init__(str(error))
        self.upgrade = upgrade
        self.error = error


def upgrade_file(path: Path) -> Upgrade | None:
    """Upgrade the config file at ``path`` to the current config version, in place.

    Comments and layout are kept (those of removed keys go with them). Returns what was done,
    or ``None`` if the file was current. A file that is not valid YAML, not a mapping, or not
    a valid config once upgraded is left as it is for :func:`bridge.config.load_config` to
    report. Raises :class:`ConfigError` for a config version from the future and
    :class:`UpgradeNotWritten` if the file cannot be written.
    """
    rt = _round_trip()
    try:
        data = rt.load(path.read_text(encoding="utf-8"))
    except (OSError, RoundTripError):  # load_config reports what is wrong with the file
        return None
    if not isinstance(data, dict):
        return None
    try:
        done = upgrade(data)
    except ConfigVersionError as e:
        raise ConfigError(f"{path}: {e}") from e
    if done is None:
        return None
    text = _dump(rt, data)
    try:
        build(Config, yaml.safe_load(text), "")
    except (ConfigError, yaml.YAMLError):
        return None
    try:
        _atomic_write(path, text)
    except OSError as e:
        raise UpgradeNotWritten(done, e) from e
    return done


def write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    """Write plain data as YAML (used for the registration file)."""
    _atomic_write(path, yaml.safe_dump(dict(data), sort_keys=False))


def _atomic_write(path: Path, text: str) -> None:
    # Tokens and keys end up in these files: keep them private to the bridge's user.
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

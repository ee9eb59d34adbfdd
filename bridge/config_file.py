"""Reading and writing the configuration file on disk.

Writes go through ruamel.yaml's round-trip mode so the operator's comments and layout survive
when the bridge saves generated tokens into the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

import bridge
from bridge.config import Config, to_dict

EXAMPLE_NAME = "config.example.yaml"


def example_config_text() -> str:
    """The commented example config (from the source tree, or generated from the defaults)."""
    in_tree = Path(bridge.__file__).resolve().parent.parent / EXAMPLE_NAME
    if in_tree.is_file():
        return in_tree.read_text(encoding="utf-8")
    return yaml.safe_dump(to_dict(Config()), sort_keys=False)


def create_from_example(path: Path) -> None:
    """Write the example config to ``path`` (which must not exist)."""
    _atomic_write(path, example_config_text())


def update_values(path: Path, updates: Mapping[tuple[str, str], Any]) -> None:
    """Set ``section.key`` values in the file at ``path``, keeping comments and order."""
    rt = YAML()
    rt.preserve_quotes = True
    data = rt.load(path.read_text(encoding="utf-8"))
    for (section, key), value in updates.items():
        data.setdefault(section, {})[key] = value
    from io import StringIO

    out = StringIO()
    rt.dump(data, out)
    _atomic_write(path, out.getvalue())


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

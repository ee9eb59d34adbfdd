"""Files the bridge ships besides its code: the alembic migrations and the example config.

Their source of truth is the top of the repository (``alembic/``, ``config.example.yaml``).
The wheel carries copies inside the package, under ``bridge/_data/`` (see
``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml); an editable install or
a source checkout has no such copies and uses the files at the top of the repository.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ALEMBIC = "alembic"
EXAMPLE_CONFIG = "config.example.yaml"

# The package directory the wheel puts the data files in.
PACKAGED_DIR = "_data"


class MissingResource(RuntimeError):
    """A data file is neither installed with the package nor in a source checkout."""


def source_root() -> Path | None:
    """The repository the package is imported from, if it is (editable install, checkout)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def path(name: str) -> Path:
    """The file or directory ``name`` (``ALEMBIC``, ``EXAMPLE_CONFIG``) on disk.

    An installed wheel's ``bridge/_data/<name>`` comes first; otherwise ``<repository>/<name>``
    of the source tree the package is imported from.
    """
    packaged = resources.files(__package__ or "bridge") / PACKAGED_DIR / name
    # A package installed from a wheel lives on the file system; a zipped package would not
    # let alembic read its scripts, so only real paths count.
    if isinstance(packaged, Path) and packaged.exists():
        return packaged
    root = source_root()
    if root is not None and (root / name).exists():
        return root / name
    raise MissingResource(
        f"{name} is missing: it is neither installed with the bridge "
        f"(bridge/{PACKAGED_DIR}/{name}) nor in a source checkout; reinstall the bridge"
    )


def read_text(name: str) -> str:
    """The text of the data file ``name``."""
    return path(name).read_text(encoding="utf-8")

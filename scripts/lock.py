"""Print constraints.txt: the exact versions, in this virtualenv, of everything the bridge and
its test extra need (their dependency closure, nothing else that happens to be installed).

    .venv/bin/python scripts/lock.py > constraints.txt

Run it in a virtualenv where the test suite passes (see README, "Dependencies").
"""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

PROJECT = "session-matrix-bridge"
EXTRAS = ("test",)


def closure(name: str, extras: tuple[str, ...]) -> dict[NormalizedName, str]:
    """Installed distributions needed by ``name[extras]``: normalized name -> version."""
    found: dict[NormalizedName, str] = {}
    seen: set[tuple[NormalizedName, str]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(name, extras)]
    while todo:
        dist_name, dist_extras = todo.pop()
        key = canonicalize_name(dist_name)
        wanted = {(key, extra) for extra in ("", *dist_extras)} - seen
        if not wanted:
            continue
        seen |= wanted
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{dist_name} is needed but not installed: install the project first")
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for _, extra in wanted
            ):
                todo.append((req.name, tuple(sorted(req.extras))))
    return found


def main() -> None:
    pins = closure(PROJECT, EXTRAS)
    del pins[canonicalize_name(PROJECT)]
    print("# The versions the bridge and its test extra are tested with (pip install -c).")
    print("# Regenerate: .venv/bin/python scripts/lock.py > constraints.txt (see README).")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main()

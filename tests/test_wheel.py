"""The wheel is the whole bridge: built, installed alone into an empty virtualenv (its
dependencies pinned by constraints.txt), it creates its config and migrates a database from a
working directory that knows nothing of the repository."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

from bridge.db import migrate
from bridge.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def run(
    args: list[str | Path], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    # Nothing of this checkout or of the test environment leaks into the child.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "SMB_", "PYTHON")) and k != "VIRTUAL_ENV"
    }
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def build_wheel(out: Path) -> Path:
    # The test environment has the build backend (the test extra): no download, no isolation.
    proc = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            ROOT,
        ],
        cwd=out,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("session_matrix_bridge-*.whl")
    return wheel


def test_wheel_installs_alone_and_runs_the_first_start(tmp_path: Path) -> None:
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    for directory in (dist, work):
        directory.mkdir()
    wheel = build_wheel(dist)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bridge/_data/config.example.yaml" in names
    assert "bridge/_data/alembic/env.py" in names
    assert "bridge/_data/alembic/versions/0001_initial.py" in names
    assert not [n for n in names if n.startswith(("tests/", "alembic/", "bench/"))]

    proc = run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    python = venv / "bin" / "python"
    proc = run(
        [python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel], cwd=work
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # The package and its data files come from the new virtualenv, not from this checkout.
    proc = run(
        [
            python,
            "-c",
            "import bridge.resources as r; print(r.__file__); print(r.path('alembic'))",
        ],
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    module, alembic_dir = (Path(line) for line in proc.stdout.splitlines())
    assert module.is_relative_to(venv) and alembic_dir.is_relative_to(venv)

    # First start: the commented example becomes the config, exit code 3.
    config = work / "new.yaml"
    proc = run([python, "-m", "bridge", "-c", "new.yaml"], cwd=work)
    assert proc.returncode == ExitCode.CONFIG_CREATED, proc.stderr
    assert config.read_text() == EXAMPLE.read_text()

    # Edited (no placeholders, a SQLite file of its own), it migrates.
    db = work / "data" / "bridge.db"
    db.parent.mkdir()
    text = config.read_text().replace("example.org", "chat.example.com")
    config.write_text(text.replace("sqlite+aiosqlite:///bridge.db", f"sqlite+aiosqlite:///{db}"))
    proc = run([python, "-m", "bridge", "-c", "new.yaml", "--migrate-only"], cwd=work)
    assert proc.returncode == ExitCode.OK, proc.stderr
    with sqlite3.connect(db) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert versions == [(migrate.head_revision(),)]

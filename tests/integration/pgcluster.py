"""A throw-away PostgreSQL server of one test, which the test may stop and start again.

The PostgreSQL of the test command is shared by every test and must never be stopped; a test
that takes the database away (an outage) gets a cluster of its own here, made the way
``scripts/services.sh`` makes the shared one: ``initdb`` and ``pg_ctl`` from Debian's server
packages, run as the ``postgres`` user when the tests run as root, on a free loopback port.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found:
        pytest.fail("PostgreSQL's server binaries are missing (scripts/services.sh installs them)")
    return Path(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """``initdb`` once, then :meth:`start` / :meth:`stop` as often as the test likes."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        # Not under pytest's tmp_path: the postgres user must be able to enter it.
        self.root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_pg: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.root, "postgres")
            self.as_pg = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.as_pg, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, f"{args[0]} failed: {out.decode(errors='replace')}"

    async def init(self) -> None:
        await self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start", "-o", options,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop it the way an operator's restart does (``-m fast``: sessions are ended)."""
        await self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    async def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

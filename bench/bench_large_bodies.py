"""Memory of large appservice transactions: the peak RSS growth of a bridge endpoint (real
``BridgeAppService`` and durable inbox on SQLite, in a process of its own) while it receives
one 60 MiB transaction (the baseline), then N of them in parallel (prints only).

Run: ``.venv/bin/python -m bench.bench_large_bodies [--n 4] [--mib 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HS_TOKEN = "bench-hs-token"
EVENT_BODY = 60_000  # a little under Synapse's 64 KiB event limit, as a busy room sends


def status_mib(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_peak() -> None:
    """Start measuring the peak from now: writing 5 to ``clear_refs`` resets ``VmHWM``."""
    Path("/proc/self/clear_refs").write_text("5")


def body(mib: int, seed: int) -> bytes:
    """A transaction of about ``mib`` MiB of ordinary text messages."""
    count = mib * 1024 * 1024 // (EVENT_BODY + 200)
    events = [
        {
            "type": "m.room.message",
            "room_id": f"!bench{i % 7}:example.com",
            "event_id": f"$bench-{seed}-{i}",
            "sender": "@user:example.com",
            "origin_server_ts": 1_700_000_000_000 + i,
            "content": {"msgtype": "m.text", "body": "x" * EVENT_BODY},
        }
        for i in range(count)
    ]
    return json.dumps({"events": events}).encode()


async def serve(workdir: Path, port: int) -> None:
    """The measured side: the endpoint on ``port`` until stdin closes, then its peak RSS."""
    from bridge.core.portal.inbox import MatrixInbox
    from bridge.db.engine import Database
    from bridge.db.migrate import upgrade_to_head
    from bridge.db.repos import Repositories
    from bridge.matrix.appservice import BridgeAppService

    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await upgrade_to_head(url)
    db = Database.from_url(url)

    async def ignore(event: dict[str, object]) -> None:
        return None

    inbox = MatrixInbox(Repositories.create(db).inbox, ignore, ignore)
    az = BridgeAppService(
        server="http://127.0.0.1:1",
        domain="example.com",
        as_token="as",
        hs_token=HS_TOKEN,
        bot_localpart="bot",
        registration_id="bench",
        sink=inbox,
    )
    runner = aiohttp.web.AppRunner(az.app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    reset_peak()
    print(f"ready {status_mib('VmRSS'):.1f}", flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(f"peak {status_mib('VmHWM'):.1f}", flush=True)
    await runner.cleanup()
    await db.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def send(port: int, data: bytes, txn: str) -> int:
    url = f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/{txn}"
    headers = {"Authorization": f"Bearer {HS_TOKEN}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.put(url, data=data, headers=headers) as resp,
    ):
        return resp.status


async def run_round(n: int, mib: int, label: str) -> None:
    """A fresh endpoint process receives ``n`` parallel transactions of ``mib`` MiB."""
    bodies = [body(mib, seed) for seed in range(n)]
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bench_large_bodies",
                "--serve",
                tmp,
                "--port",
                str(port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        before = float(child.stdout.readline().split()[1])
        start = time.perf_counter()
        statuses = await asyncio.gather(
            *(send(port, b, f"{label}-{i}") for i, b in enumerate(bodies))
        )
        elapsed = time.perf_counter() - start
        child.stdin.write("report\n")
        child.stdin.flush()
        peak = float(child.stdout.readline().split()[1])
        child.stdin.close()
        child.wait(timeout=60)
    print(
        f"{label:9s} {n} x {mib} MiB  statuses={sorted(set(statuses))}  "
        f"peak RSS growth {peak - before:7.1f} MiB  ({elapsed:5.1f} s)"
    )


async def main(n: int, mib: int) -> None:
    await run_round(1, mib, "baseline")
    await run_round(n, mib, "parallel")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--mib", type=int, default=60)
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.port))
    else:
        asyncio.run(main(args.n, args.mib))

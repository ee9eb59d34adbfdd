"""``python -m tests.sessionnet``: one JSON line when ready, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


async def test_standalone_devnet_prints_one_json_line_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sessionnet", "--host", "127.0.0.1",
        "--nodes", "4", "--swarm-size", "2", "--rooms", "lobby,dev,ops",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        info = json.loads(line)
        assert info["seed"].startswith("https://127.0.0.1:")
        assert len(info["seed_cert_sha256"]) == 64
        assert len(info["nodes"]) == 4
        assert info["community"].startswith("http://127.0.0.1:")
        assert len(info["community_pubkey"]) == 64
        assert info["rooms"] == ["lobby", "dev", "ops"]
        assert info["file_server"].startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{info['community']}/room/ops") as resp:
                assert resp.status in (200, 401)  # the room exists (reading may need auth)
            async with http.post(f"{info['file_server']}/file", data=b"hello") as resp:
                file_id = (await resp.json())["id"]
            async with http.get(f"{info['file_server']}/file/{file_id}") as resp:
                assert await resp.read() == b"hello"
        body = {"jsonrpc": "2.0", "method": "get_n_service_nodes", "params": {}}
        fingerprint = aiohttp.Fingerprint(bytes.fromhex(info["seed_cert_sha256"]))
        async with (
            aiohttp.ClientSession() as http,
            http.post(info["seed"], json=body, ssl=fingerprint) as resp,
        ):
            states = (await resp.json())["result"]["service_node_states"]
        assert len(states) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0

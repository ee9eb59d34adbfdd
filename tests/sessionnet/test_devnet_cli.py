"""``python -m tests.sessionnet``: one JSON line when ready, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import CommunityMessage

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


async def start_devnet(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sessionnet", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    if not line:
        assert proc.stderr is not None
        raise AssertionError((await proc.stderr.read()).decode())
    info: dict[str, Any] = json.loads(line)
    return proc, info


async def stop_devnet(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=10) == 0


async def post_to_lobby(info: dict[str, Any], text: str) -> CommunityMessage:
    url = f"{info['community']}/lobby?public_key={info['community_pubkey']}"
    async with aiohttp.ClientSession() as http:
        client, room = CommunityClient.from_url(http, Identity.generate(), url)
        await client.join(room)
        await client.post(room, VisibleMessage(body=text))
        (posted,) = await client.recent(room, 5)
        return posted


async def test_state_dir_keeps_the_urls_across_restarts(tmp_path: Path) -> None:
    # An operator trying the bridge writes the devnet's URLs, pin and community key into the
    # bridge config once; they used to change on every start.
    args = ("--nodes", "3", "--swarm-size", "3", "--seed-http", "--state-dir", str(tmp_path))
    proc, first = await start_devnet(*args)
    before = await post_to_lobby(first, "before the restart")
    await stop_devnet(proc)
    proc, second = await start_devnet(*args)
    try:
        # The posts are gone, but the counters go on: a bridge that saw message 1 at seqno 1
        # (it dedups by id, and polls since its last seqno) sees the next post.
        after = await post_to_lobby(second, "after the restart")
        assert after.id > before.id and after.seqno > before.seqno
        kept = ("seed", "seed_http", "seed_cert_sha256", "nodes", "community")
        assert {k: second[k] for k in kept} == {k: first[k] for k in kept}
        kept = ("community_pubkey", "file_server", "rooms")
        assert {k: second[k] for k in kept} == {k: first[k] for k in kept}
        # The restarted seed really serves the kept certificate and the kept nodes.
        body = {"jsonrpc": "2.0", "method": "get_n_service_nodes", "params": {}}
        fingerprint = aiohttp.Fingerprint(bytes.fromhex(first["seed_cert_sha256"]))
        async with (
            aiohttp.ClientSession() as http,
            http.post(first["seed"], json=body, ssl=fingerprint) as resp,
        ):
            states = (await resp.json())["result"]["service_node_states"]
        ports = sorted(int(s["storage_port"]) for s in states)
        assert ports == sorted(int(url.rsplit(":", 1)[1].split("/")[0]) for url in first["nodes"])
    finally:
        await stop_devnet(proc)

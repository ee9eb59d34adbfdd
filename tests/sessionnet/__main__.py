"""Run the devnet standalone: ``python -m tests.sessionnet --host 127.0.0.1 --nodes 6``.

When ready, prints ONE JSON line on stdout (see :meth:`Devnet.describe`: ``seed``,
``seed_cert_sha256``, node URLs, and the ``community``/``community_pubkey``/``rooms``/
``file_server`` keys that extensions fill in), then runs until SIGINT/SIGTERM. With
``--state-dir DIR`` every later start with the same DIR serves the same URLs, seed
certificate and community key (:mod:`tests.sessionnet.state`), so a bridge config written for
it keeps working.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import CommunityAndFiles
from tests.sessionnet.net import Devnet, Extension
from tests.sessionnet.state import DevnetState


def build_extensions(args: argparse.Namespace, state: DevnetState) -> CommunityAndFiles:
    """The community server (with the rooms asked for) and the file server."""
    rooms = [RoomSpec(token=token, name=token.capitalize()) for token in args.rooms.split(",")]
    servers = CommunityAndFiles(args.host, rooms, **state.extension_kwargs())
    state.continue_counters(servers.community.state)
    return servers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m tests.sessionnet", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--nodes", type=int, default=6, help="number of storage nodes")
    ap.add_argument("--swarm-size", type=int, default=3, help="nodes per swarm")
    ap.add_argument(
        "--seed-http",
        action="store_true",
        help="also serve the seed over plain HTTP (session-python asks http://HOST:PORT/json_rpc)",
    )
    ap.add_argument(
        "--state-dir",
        type=Path,
        help="keep ports, seed certificate and community key here: every start with the same "
        "directory serves the same URLs",
    )
    ap.add_argument("--rooms", default="lobby,dev", help="community room tokens, comma-separated")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    """Start the devnet, print the JSON line, wait for a signal, stop."""
    state = DevnetState.load(args.state_dir) if args.state_dir else DevnetState()
    servers = build_extensions(args, state)
    extensions: list[Extension] = [servers]
    devnet = Devnet(
        host=args.host,
        node_count=args.nodes,
        swarm_size=args.swarm_size,
        seed_http=args.seed_http,
        extensions=extensions,
        **(state.devnet_kwargs(args.host) if args.state_dir else {}),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await devnet.start()
    except OSError as e:
        await devnet.stop()
        kept = f" (kept in {args.state_dir})" if args.state_dir else ""
        raise SystemExit(f"cannot listen: {e}; a port of this devnet{kept} is taken") from e
    try:
        described = devnet.describe()
        if args.state_dir:
            state.remember(described)
            state.save(args.state_dir)
        sys.stdout.write(json.dumps(described) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await devnet.stop()
        if args.state_dir:
            state.remember_counters(servers.community.state)
            state.save(args.state_dir)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

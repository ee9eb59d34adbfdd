"""Run the devnet standalone: ``python -m tests.sessionnet --host 127.0.0.1 --nodes 6``.

When ready, prints ONE JSON line on stdout (see :meth:`Devnet.describe`: ``seed``,
``seed_cert_sha256``, node URLs, and the ``community``/``community_pubkey``/``rooms``/
``file_server`` keys that extensions fill in), then runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import CommunityAndFiles
from tests.sessionnet.net import Devnet, Extension


def build_extensions(args: argparse.Namespace) -> list[Extension]:
    """The community server (with the rooms asked for) and the file server."""
    rooms = [RoomSpec(token=token, name=token.capitalize()) for token in args.rooms.split(",")]
    return [CommunityAndFiles(args.host, rooms)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m tests.sessionnet", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--nodes", type=int, default=6, help="number of storage nodes")
    ap.add_argument("--swarm-size", type=int, default=3, help="nodes per swarm")
    ap.add_argument("--seed-http", action="store_true", help="also serve the seed over plain HTTP")
    ap.add_argument("--rooms", default="lobby,dev", help="community room tokens, comma-separated")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    """Start the devnet, print the JSON line, wait for a signal, stop."""
    devnet = Devnet(
        host=args.host,
        node_count=args.nodes,
        swarm_size=args.swarm_size,
        seed_http=args.seed_http,
        extensions=build_extensions(args),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await devnet.start()
    try:
        sys.stdout.write(json.dumps(devnet.describe()) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await devnet.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

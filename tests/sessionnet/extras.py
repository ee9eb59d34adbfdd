"""Start the devnet community server and file server on free loopback ports.

:class:`CommunityAndFiles` is a :class:`tests.sessionnet.net.Extension`; its ``start``
returns the keys of the devnet's JSON line: ``community`` (server base URL; a room's
community URL is ``f"{community}/{room}?public_key={community_pubkey}"``, §5.1),
``community_pubkey``, ``rooms`` (tokens) and ``file_server`` (base URL).
:func:`start_community_and_files` does the same without a devnet.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tests.sessionnet.community import DEFAULT_ROOMS, CommunityServer
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.fileserver import FileServer


async def serve(host: str, app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve ``app`` over plain HTTP on ``port`` of ``host`` (0: a free one); return runner
    and base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, f"http://{host}:{sock.getsockname()[1]}"


@dataclass
class RequestCounter:
    """Counts HTTP requests and body bytes through an aiohttp middleware (tests, bench)."""

    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    paths: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Start counting from zero."""
        self.requests = self.bytes_in = self.bytes_out = 0
        self.paths.clear()

    @property
    def middleware(self) -> Middleware:
        """The middleware to pass to ``make_app``."""

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests += 1
            self.paths.append(request.path)
            self.bytes_in += len(await request.read())
            response = await handler(request)
            body = getattr(response, "body", None)
            if isinstance(body, bytes | bytearray):
                self.bytes_out += len(body)
            return response

        return count


class CommunityAndFiles:
    """Both servers as one devnet extension; ports 0 mean free ones, ``community_pubkey``
    keeps the community server's key (the standalone devnet's state directory)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        rooms: Iterable[RoomSpec] = DEFAULT_ROOMS,
        *,
        middlewares: Sequence[Middleware] = (),
        community_port: int = 0,
        file_server_port: int = 0,
        community_pubkey: bytes | None = None,
    ) -> None:
        self.host = host
        self.community = CommunityServer(rooms, pubkey=community_pubkey)
        self.files = FileServer()
        self.middlewares = middlewares
        self.ports = (community_port, file_server_port)
        self.community_url = ""
        self.file_server_url = ""
        self._runners: list[web.AppRunner] = []

    async def start(self, devnet: Any = None) -> dict[str, Any]:
        """Start both servers (on ``devnet.host`` when given); return the JSON-line keys."""
        host = getattr(devnet, "host", None) or self.host
        community = self.community.make_app(self.middlewares)
        runner, self.community_url = await serve(host, community, self.ports[0])
        self._runners.append(runner)
        runner, self.file_server_url = await serve(host, self.files.make_app(), self.ports[1])
        self._runners.append(runner)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """``community``, ``community_pubkey``, ``rooms``, ``file_server``."""
        return {
            "community": self.community_url,
            "community_pubkey": self.community.pubkey_hex,
            "rooms": list(self.community.state.rooms),
            "file_server": self.file_server_url,
        }

    async def stop_community(self) -> None:
        """Stop only the community server (its URL then refuses connections)."""
        runner = self._runners.pop(0)  # started first, see start()
        await runner.cleanup()

    async def stop(self) -> None:
        """Stop both servers."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()


async def start_community_and_files(
    host: str = "127.0.0.1", rooms: Iterable[RoomSpec] = DEFAULT_ROOMS
) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    """Start both servers; return the JSON-line keys and an async cleanup function."""
    extras = CommunityAndFiles(host, rooms)
    info = await extras.start()
    return info, extras.stop

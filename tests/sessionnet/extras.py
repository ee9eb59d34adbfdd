"""Start the devnet community server and file server on free loopback ports.

:class:`CommunityAndFiles` is a :class:`tests.sessionnet.net.Extension`; its ``start``
returns the keys of the devnet's JSON line: ``community`` (server base URL; a room's
community URL is ``f"{community}/{room}?public_key={community_pubkey}"``, §5.1),
``community_pubkey``, ``rooms`` (tokens) and ``file_server`` (base URL).
:func:`start_community_and_files` does the same without a devnet. Both servers can go down
and come back on the same ports with their state (:meth:`CommunityAndFiles.pause`,
:meth:`CommunityAndFiles.resume`; the devnet's ``network_down`` does it with the nodes).
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
from tests.sessionnet.listeners import Listener


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
        self._listeners: list[Listener] = []  # the community server's first
        self._paused = False

    async def start(self, devnet: Any = None) -> dict[str, Any]:
        """Start both servers (on ``devnet.host`` when given); return the JSON-line keys."""
        host = getattr(devnet, "host", None) or self.host
        community = self.community.make_app([self._refuse_while_paused, *self.middlewares])
        listener = await Listener.serve(community, host, self.ports[0])
        self.community_url = listener.base_url
        self._listeners.append(listener)
        listener = await Listener.serve(self.files.make_app(), host, self.ports[1])
        self.file_server_url = listener.base_url
        self._listeners.append(listener)
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
        listener = self._listeners.pop(0)  # started first, see start()
        await listener.close()

    async def pause(self, *, files: bool = True) -> None:
        """Both servers (only the community server if not ``files``) refuse connections
        and close the open ones, keeping their state."""
        self._paused = True
        for listener in self._listeners if files else self._listeners[:1]:
            await listener.pause()

    async def resume(self) -> None:
        """Both servers accept connections again, on the same ports."""
        for listener in self._listeners:
            await listener.resume()
        self._paused = False

    @web.middleware
    async def _refuse_while_paused(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """A request the community server was still reading when it went down is dropped,
        not served: its client must not be told "failed" about a post that was made."""
        await request.read()
        if self._paused:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503, text="server is down")
        return await handler(request)

    async def stop(self) -> None:
        """Stop both servers."""
        for listener in reversed(self._listeners):
            await listener.close()
        self._listeners.clear()


async def start_community_and_files(
    host: str = "127.0.0.1", rooms: Iterable[RoomSpec] = DEFAULT_ROOMS
) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    """Start both servers; return the JSON-line keys and an async cleanup function."""
    extras = CommunityAndFiles(host, rooms)
    info = await extras.start()
    return info, extras.stop

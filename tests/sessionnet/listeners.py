"""A served aiohttp application that can go down and come back on the same port (fault tests).

:meth:`Listener.pause` closes the listening socket, so new connections are refused, and closes
the connections already open (a client's keep-alive connection must not carry it through an
outage, as it would not through a real server's restart). :meth:`Listener.resume` listens on
the same port again. The application, and so every piece of the server's state, is kept.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from aiohttp import web


def bind(host: str, port: int = 0) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), reusable at once after a close."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@dataclass
class Listener:
    """One application served on one fixed port, over TLS when ``ssl_context`` is given."""

    runner: web.AppRunner
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    site: web.BaseSite | None = None

    @classmethod
    async def serve(
        cls,
        app: web.Application,
        host: str,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Listener:
        """Serve ``app`` on ``host:port`` (0: a free port) and return its listener."""
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = bind(host, port)
        listener = cls(runner, host, sock.getsockname()[1], ssl_context)
        await listener.open(sock)
        return listener

    @property
    def up(self) -> bool:
        """Whether it accepts connections."""
        return self.site is not None

    @property
    def base_url(self) -> str:
        """``scheme://host:port``."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def open(self, sock: socket.socket) -> None:
        """Accept connections on ``sock`` (bound to this listener's port)."""
        site = web.SockSite(self.runner, sock, ssl_context=self.ssl_context)
        await site.start()
        self.site = site

    async def pause(self) -> None:
        """Refuse new connections and close the open ones (nothing if already down)."""
        site, self.site = self.site, None
        if site is None:
            return
        await site.stop()
        server = self.runner.server
        for handler in server.connections if server is not None else ():
            handler.force_close()

    async def resume(self) -> None:
        """Accept connections again, on the same port (nothing if already up)."""
        if self.site is None:
            await self.open(bind(self.host, self.port))

    async def close(self) -> None:
        """Stop serving for good."""
        self.site = None
        await self.runner.cleanup()

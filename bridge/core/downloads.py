"""Which servers the bridge downloads Session files from.

Attachment and avatar URLs come from other people's messages. Fetching any URL would let a
Session user make the bridge request addresses inside the operator's network (SSRF), so only
the configured file server (and community servers the bridge already talks to) are allowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from bridge.session.errors import InvalidInput

Download = Callable[[str], Awaitable[bytes]]


class DownloadRefused(InvalidInput):
    """The URL points at a server the bridge does not download from."""


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, lowercase, with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


class AllowedDownloads:
    """A downloader that refuses URLs outside the allowed servers."""

    def __init__(self, download: Download, allowed: Iterable[str]) -> None:
        self._download = download
        self._allowed = {origin(url) for url in allowed}

    def allow(self, url: str) -> None:
        """Also allow the server of ``url`` (e.g. a community server being bridged)."""
        self._allowed.add(origin(url))

    async def __call__(self, url: str) -> bytes:
        if origin(url) not in self._allowed:
            raise DownloadRefused(
                f"not downloading from {origin(url)}: not a known Session server"
            )
        return await self._download(url)

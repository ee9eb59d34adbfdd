"""Which servers the bridge downloads Session files from: one allow-list for every download
made on behalf of a Session user (direct-chat and community attachments, ghost avatars).

Attachment and avatar URLs come from other people's messages. Fetching any URL would let a
Session user make the bridge request addresses inside the operator's network (SSRF), so only
the configured file server and the community servers the bridge already talks to are allowed,
and the download client (:func:`bridge.session.netguard.guarded_session`) checks every address
it connects to, redirects included. An internal address (loopback, private, link-local...)
is used only for a host the operator named: the configured file server, whatever it resolves
to, and the hosts of ``session.internal_hosts``. A community server is bridged by a user's
command, so it names nothing for the operator: one on any other host must be on public
addresses, whether its URL gives a name (which someone may point at the operator's network:
DNS rebinding) or an address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from bridge.session.dm_media import FileTransfer, Uploaded
from bridge.session.netguard import DestinationRefused, normal_host

Download = Callable[[str], Awaitable[bytes]]


class DownloadRefused(DestinationRefused):
    """The URL points at a server the bridge does not download from."""


def _host(url: str) -> str:
    return normal_host(urlsplit(url).hostname or "")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, lowercase, with the default port made explicit;
    :class:`DownloadRefused` for a URL without a usable origin."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise DownloadRefused("not a URL with a valid host and port") from e
    scheme = parts.scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme, 0)
    host = _host(url)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class AllowedDownloads:
    """A downloader that refuses URLs outside the allowed servers; also the
    :class:`~bridge.session.netguard.DestinationPolicy` of the download client."""

    def __init__(
        self, download: Download, configured: Iterable[str], internal_hosts: Iterable[str] = ()
    ) -> None:
        self._download = download
        self._allowed: set[str] = set()
        self._explicit: set[str] = {normal_host(h) for h in internal_hosts}
        for url in configured:  # the operator's own servers: any address they resolve to
            self._allowed.add(origin(url))
            self._explicit.add(_host(url))

    def allow(self, url: str) -> None:
        """Also allow the server of ``url`` (a community server being bridged); on public
        addresses only, unless the operator listed its host."""
        self._allowed.add(origin(url))

    def check_url(self, url: str) -> None:
        """:class:`DownloadRefused` unless ``url`` is on an allowed server."""
        where = origin(url)
        if where not in self._allowed:
            raise DownloadRefused(f"not downloading from {where}: not a known Session server")

    def internal_allowed(self, host: str) -> bool:
        """Whether the operator named ``host``, so it may be an internal address."""
        return normal_host(host) in self._explicit

    async def __call__(self, url: str) -> bytes:
        self.check_url(url)
        return await self._download(url)


class GuardedFiles:
    """A file server for Session clients: uploads as they are, downloads through the
    allow-list (the pointers of received attachments name any URL their sender likes)."""

    def __init__(self, files: FileTransfer, downloads: Download) -> None:
        self._files = files
        self._downloads = downloads

    async def upload(self, data: bytes, /) -> Uploaded:
        """Upload to the configured file server."""
        return await self._files.upload(data)

    async def download(self, url: str, /) -> bytes:
        """Download ``url`` if it is on an allowed server."""
        return await self._downloads(url)

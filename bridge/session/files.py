"""File server client and file URLs (docs/session-protocol.md §2.6, §7.1).

Uploads are raw bytes (already encrypted by :mod:`bridge.session.attachments` for 1:1 and
group attachments); the server answers ``{"id", "expires"}``. The URL that goes into
``AttachmentPointer.url`` is ``{server}/file/{id}``, optionally followed by a fragment:
``p=<hex>`` names a non-default file server's Ed25519 key and ``d`` marks deterministic
encryption (§7.3).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urlsplit

import aiohttp

from bridge.session.attachments import MAX_LEGACY_BLOB_BYTES, parse_file_url
from bridge.session.errors import DecodeError, InvalidInput, ProtocolError

__all__ = [
    "DEFAULT_FILE_SERVER",
    "DEFAULT_FILE_SERVER_ED25519",
    "FileInfo",
    "FileNotFound",
    "FileServerClient",
    "FileServerError",
    "FileServerUnreachable",
    "FileServerUrl",
    "FileTooLarge",
    "InvalidFileReply",
    "InvalidFileUrl",
    "UploadedFile",
    "build_file_url",
    "fragment_key",
    "parse_file_server_url",
]

log = logging.getLogger("bridge.session.files")

DEFAULT_FILE_SERVER = "http://filev2.getsession.org"  # §7.1
DEFAULT_FILE_SERVER_ED25519 = "b8eef9821445ae16e2e97ef8aa6fe782fd11ad5253cd6723b281341dba22e371"
# The largest upload: the encrypted, padded blob of a file at desktop's 10 000 000-byte limit,
# which counts the plaintext (§7.1; checked by bridge.session.attachments).
MAX_FILE_BYTES = MAX_LEGACY_BLOB_BYTES
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_HEX_KEY = re.compile(r"[0-9a-f]{64}", re.ASCII)


class InvalidFileUrl(InvalidInput):
    """A URL is not ``{server}/file/{id}[#p=<hex>&d]``."""


class FileTooLarge(InvalidInput):
    """The data is over the file server's limit (client check, or the server's 413)."""


class FileServerError(ProtocolError):
    """The file server refused a request; ``status`` is its HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FileServerUnreachable(FileServerError):
    """Connection failure or timeout."""


class FileNotFound(FileServerError):
    """404: unknown or expired file id."""


class InvalidFileReply(FileServerError, DecodeError):
    """A 2xx reply without the fields §7.1 describes."""


@dataclass(frozen=True, slots=True)
class FileServerUrl:
    """A parsed file URL: server base URL, file id and the fragment flags (§2.6)."""

    server: str
    file_id: str
    server_pubkey: str | None = None
    deterministic: bool = False

    def __str__(self) -> str:
        return build_file_url(self.server, self.file_id, self.server_pubkey, self.deterministic)


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """An upload: id, the URL for the pointer, and the expiry (Unix seconds) if given."""

    id: str
    url: str
    expires: float | None


@dataclass(frozen=True, slots=True)
class FileInfo:
    """``GET /file/{id}/info``."""

    size: int
    uploaded: float
    expires: float | None


def build_file_url(
    server: str, file_id: str, server_pubkey: str | None = None, deterministic: bool = False
) -> str:
    """``{server}/file/{id}`` plus ``#p=<hex>`` and/or ``d`` when needed (§2.6, §7.1)."""
    if not _FILE_ID.fullmatch(file_id):
        raise InvalidFileUrl("a file id is URL-safe base64 or digits")
    fragment = []
    if server_pubkey is not None:
        if not _HEX_KEY.fullmatch(server_pubkey):
            raise InvalidFileUrl("the p= key is 64 lowercase hex characters")
        fragment.append(f"p={server_pubkey}")
    if deterministic:
        fragment.append("d")
    url = f"{server.rstrip('/')}/file/{file_id}"
    return f"{url}#{'&'.join(fragment)}" if fragment else url


def fragment_key(server: str, ed25519_key: str | None) -> str | None:
    """The key for the ``#p=`` of ``server``'s file URLs (§2.6, §7.1): none for the default
    server under its own key (the apps know it), else ``ed25519_key`` in lowercase. Android
    refuses a URL of any other server that lacks it."""
    key = ed25519_key.lower() if ed25519_key else None
    default = server.rstrip("/") == DEFAULT_FILE_SERVER
    if default and key in (None, DEFAULT_FILE_SERVER_ED25519):
        return None
    return key


def parse_file_server_url(url: str) -> FileServerUrl:
    """Split a file URL into server, id and fragment flags; :class:`InvalidFileUrl` if off."""
    if not isinstance(url, str):
        raise InvalidFileUrl("a file URL must be text")
    parsed = parse_file_url(url.strip())
    parts = urlsplit(parsed.url)
    server_path, sep, file_id = parts.path.rpartition("/file/")
    if parts.scheme not in ("http", "https") or not parts.netloc or not sep:
        raise InvalidFileUrl("a file URL looks like http(s)://host/file/<id>")
    if not _FILE_ID.fullmatch(file_id) or parts.query:
        raise InvalidFileUrl("invalid file id in the URL")
    key = parsed.server_pubkey.lower() if parsed.server_pubkey else None
    if key is not None and not _HEX_KEY.fullmatch(key):
        raise InvalidFileUrl("the p= key is 64 hex characters")
    server = f"{parts.scheme}://{parts.netloc}{server_path}"
    return FileServerUrl(server, file_id, key, parsed.deterministic)


def _seconds(value: object) -> float | None:
    """A JSON number of seconds, or ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class FileServerClient:
    """Upload to and download from one file server (caller-owned aiohttp session)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = DEFAULT_FILE_SERVER,
        *,
        server_pubkey: str | None = None,
        timeout: float = 60.0,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        # the #p= of the URLs of uploads (none on the default server, fragment_key)
        self.server_pubkey = fragment_key(self.base_url, server_pubkey)
        self.max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.debug("%s %s failed: %s", method, url, type(exc).__name__)
            raise FileServerUnreachable(f"cannot reach file server: {type(exc).__name__}") from exc
        if status == 404:
            raise FileNotFound("file not found (unknown or expired)", status=status)
        if status == 413:
            raise FileTooLarge("the file server refused the upload as too large")
        if not 200 <= status < 300:
            raise FileServerError(f"file server answered HTTP {status}", status=status)
        return body

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidFileReply("file server reply is not JSON") from exc
        if not isinstance(obj, dict):
            raise InvalidFileReply("file server reply is not an object")
        return obj

    async def upload(
        self, data: bytes, *, ttl: int | None = None, deterministic: bool = False
    ) -> UploadedFile:
        """Upload ``data``; return its id, pointer URL and expiry (§7.1)."""
        if len(data) > self.max_bytes:
            raise FileTooLarge(f"{len(data)} bytes is over the {self.max_bytes}-byte limit")
        headers = {"Content-Type": "application/octet-stream"}
        if ttl is not None:
            headers["X-FS-TTL"] = str(int(ttl))
        obj = self._json(await self._request("POST", f"{self.base_url}/file", data, headers))
        file_id, expires = obj.get("id"), obj.get("expires")
        if isinstance(file_id, int) and not isinstance(file_id, bool):
            file_id = str(file_id)  # old servers answer numeric ids
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
            raise InvalidFileReply("upload reply has no valid id")
        url = build_file_url(self.base_url, file_id, self.server_pubkey, deterministic)
        return UploadedFile(file_id, url, _seconds(expires))

    def _file_url(self, file: str) -> str:
        if "/" in file:  # a full URL: its fragment (#p=…&d) is never sent, nor checked here
            parsed = parse_file_server_url(urldefrag(file).url)
            return f"{parsed.server}/file/{parsed.file_id}"
        if not _FILE_ID.fullmatch(file):
            raise InvalidFileUrl("invalid file id")
        return f"{self.base_url}/file/{file}"

    async def download(self, file: str) -> bytes:
        """Download by id (on this server) or by full URL (any server, fragment ignored)."""
        return await self._request("GET", self._file_url(file))

    async def info(self, file_id: str) -> FileInfo:
        """``{size, uploaded, expires}`` of a file on this server."""
        obj = self._json(await self._request("GET", f"{self._file_url(file_id)}/info"))
        size, uploaded, expires = obj.get("size"), obj.get("uploaded"), obj.get("expires")
        if not isinstance(size, int) or not isinstance(uploaded, int | float):
            raise InvalidFileReply("file info without size/uploaded")
        return FileInfo(size, float(uploaded), _seconds(expires))

    async def extend(self, file: str, *, ttl: int | None = None) -> float | None:
        """``POST /file/{id}/extend``: push back the expiry of a file (by id or full URL, on
        its own server); the new expiry (Unix seconds) when the server gives it (§7.1).
        Servers renew only the 44-character ids of their deduplicating mode; an older server
        without the route answers 404 (:class:`FileNotFound`), like an expired file."""
        headers = {"X-FS-TTL": str(int(ttl))} if ttl is not None else None
        body = await self._request("POST", f"{self._file_url(file)}/extend", headers=headers)
        return _seconds(self._json(body).get("expires"))

"""The devnet file server (docs/session-protocol.md §7.1), an aiohttp app.

``POST /file`` takes the raw body and answers ``{"id", "expires"}``; ``GET /file/{id}`` gives
the bytes back, ``GET /file/{id}/info`` ``{size, uploaded, expires}`` and
``POST /file/{id}/extend`` renews it (production's route, §7.1). Ids are the 44-char
URL-safe base64 of a salted BLAKE2b of the content (the deduplicating mode of the real
server), so uploading the same bytes twice gives the same id. Uploads over 10 000 064 bytes
(the encrypted blob of a file at desktop's 10 000 000-byte plaintext limit) are refused with
413. ``X-FS-TTL`` shortens or extends the expiry within
``max_ttl``. State is in memory. ``ed25519_pubkey`` is the server's key (random per
instance): it serves no request here (nothing is onion-routed), but clients put it into the
``#p=`` of their file URLs as they must for any server but the default one (§2.6).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nacl.signing
from aiohttp import web
from aiohttp.typedefs import Middleware

MAX_FILE_BYTES = 10_000_064  # = bridge.session.attachments.MAX_LEGACY_BLOB_BYTES
DEFAULT_TTL = 14 * 86400.0
MAX_TTL = 60 * 86400.0


@dataclass
class _File:
    data: bytes
    uploaded: float
    expires: float


class FileServer:
    """In-memory file server; ``clock`` gives Unix seconds."""

    def __init__(
        self,
        *,
        max_bytes: int = MAX_FILE_BYTES,
        default_ttl: float = DEFAULT_TTL,
        max_ttl: float = MAX_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_bytes = max_bytes
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.clock = clock
        self.files: dict[str, _File] = {}
        self._salt = secrets.token_bytes(16)
        self.ed25519_pubkey = nacl.signing.SigningKey.generate().verify_key.encode().hex()
        self.extended = 0  # renewals served (POST /file/{id}/extend)

    def make_app(self, middlewares: Sequence[Middleware] = ()) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=list(middlewares), client_max_size=self.max_bytes + 1)
        app.router.add_post("/file", self._upload)
        app.router.add_get("/file/{id}", self._download)
        app.router.add_get("/file/{id}/info", self._info)
        app.router.add_post("/file/{id}/extend", self._extend)
        return app

    def _file_id(self, data: bytes) -> str:
        digest = hashlib.blake2b(data, digest_size=33, salt=self._salt).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii")  # 44 chars, no padding

    def _ttl(self, request: web.Request) -> float:
        text = request.headers.get("X-FS-TTL")
        if text is None:
            return self.default_ttl
        try:
            ttl = float(text)
        except ValueError as exc:
            raise web.HTTPBadRequest(text="X-FS-TTL must be seconds") from exc
        return min(max(ttl, 60.0), self.max_ttl)

    async def _upload(self, request: web.Request) -> web.Response:
        declared = request.content_length
        if declared is not None and declared > self.max_bytes:
            return web.Response(status=413, text="file too large")
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="file too large")
        if not data:
            return web.Response(status=400, text="empty upload")
        now = self.clock()
        file_id = self._file_id(data)
        expires = now + self._ttl(request)
        old = self.files.get(file_id)
        if old is not None:  # same content: keep it, and keep the later expiry
            expires = max(expires, old.expires)
        self.files[file_id] = _File(data, old.uploaded if old else now, expires)
        return web.json_response({"id": file_id, "expires": expires})

    def _get(self, request: web.Request) -> _File:
        stored = self.files.get(request.match_info["id"])
        if stored is None or stored.expires < self.clock():
            raise web.HTTPNotFound(text="file not found")
        return stored

    async def _download(self, request: web.Request) -> web.Response:
        stored = self._get(request)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _extend(self, request: web.Request) -> web.Response:
        """Production's renewal: the file lives ``X-FS-TTL`` (or the default) from now on,
        never shorter than before; answers ``{expires, uploaded, size}``."""
        stored = self._get(request)
        stored.expires = max(stored.expires, self.clock() + self._ttl(request))
        self.extended += 1
        info = {"expires": stored.expires, "uploaded": stored.uploaded, "size": len(stored.data)}
        return web.json_response(info)

    async def _info(self, request: web.Request) -> web.Response:
        stored = self._get(request)
        info = {"size": len(stored.data), "uploaded": stored.uploaded, "expires": stored.expires}
        return web.json_response(info)

"""Signed HTTP requests to one community server (docs/session-protocol.md §5.2, §5.12).

Every request carries the ``X-SOGS-*`` headers of the blind15 key, signed over the path *as
text* (percent-decoded, with its query) while the wire carries it percent-encoded; every
network failure becomes :class:`CommunityUnreachable` and every refusal a typed
:class:`CommunityError` subclass chosen by status.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from bridge.session.keys import Identity
from bridge.session.sogs.auth import sign_request
from bridge.session.sogs.errors import (
    CommunityError,
    CommunityForbidden,
    CommunityHttpError,
    CommunityNotFound,
    CommunityUnreachable,
    InvalidCommunityReply,
    RequestRejected,
    RequestTooLarge,
    RoomNotFound,
    TimingRejected,
    WrongServerKey,
)
from bridge.session.sogs.urls import CommunityServerRef

__all__ = ["HttpReply", "SogsTransport", "error_for_status", "short_reason"]

log = logging.getLogger("bridge.session.sogs.transport")

_PATH_SAFE = "/-_.~!$&'()*+,;=:@"
MAX_REASON = 120
_BY_STATUS: dict[int, type[CommunityHttpError]] = {
    400: RequestRejected,
    401: WrongServerKey,
    403: CommunityForbidden,
    404: CommunityNotFound,
    413: RequestTooLarge,
    425: TimingRejected,
}


def short_reason(status: int, body: str) -> str:
    """What a refusal's body says, fit for a message: one line of at most
    :data:`MAX_REASON` characters. An HTML page (pysogs answers most 404s with the web
    framework's "Not Found" page) or an empty body becomes the status's standard phrase."""
    text = " ".join(body.split())
    if not text or text.startswith("<") or "<html" in text.lower():
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            return "refused"
    text = "".join(c for c in text if c.isprintable())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def error_for_status(status: int, detail: str, *, room: str | None = None) -> CommunityError:
    """The typed error for a non-2xx ``status``; a 404 on a room request is RoomNotFound.
    The message has the status and a short reason, never the server's page (``short_reason``).
    """
    detail = short_reason(status, detail)
    if status == 404 and room is not None:
        return RoomNotFound(f"room {room!r} not found: {detail}", status=status)
    kind = _BY_STATUS.get(status, CommunityHttpError)
    if kind is WrongServerKey:
        detail += " (is the community URL's public_key right?)"
    return kind(f"HTTP {status}: {detail}", status=status)


@dataclass(frozen=True, slots=True)
class HttpReply:
    """Status and raw body of one HTTP exchange."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON, else :class:`InvalidCommunityReply`."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidCommunityReply("reply body is not JSON") from exc


class SogsTransport:
    """Signs and sends requests to one server with a caller-owned aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        identity: Identity,
        server: CommunityServerRef,
        *,
        timeout: float = 20.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._identity = identity
        self.server = server
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one signed request; ``path`` is text (``/room/r/reaction/1/👍?x=y``)."""
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        auth = sign_request(
            self._identity, self.server.pubkey, method, path, body, timestamp=int(self._clock())
        )
        all_headers.update(auth.as_dict())
        raw_path, _, query = path.partition("?")
        target = quote(raw_path, safe=_PATH_SAFE) + (f"?{query}" if query else "")
        url = URL(self.server.base_url + target, encoded=True)
        try:
            async with self._session.request(
                method, url, data=body or None, headers=all_headers, timeout=self._timeout
            ) as resp:
                return HttpReply(resp.status, await resp.read())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.debug("%s %s failed: %s", method, self.server.base_url, type(exc).__name__)
            raise CommunityUnreachable(
                f"cannot reach community server {self.server.base_url}: {type(exc).__name__}"
            ) from exc

    async def call(
        self, method: str, path: str, *, room: str | None = None, **kwargs: Any
    ) -> HttpReply:
        """:meth:`request`, raising the typed error for a non-2xx status."""
        reply = await self.request(method, path, **kwargs)
        if not reply.ok:
            body = reply.body.decode("utf-8", "replace")
            log.debug("%s %s: HTTP %d %r", method, path, reply.status, body[:300])
            raise error_for_status(reply.status, body, room=room)
        return reply

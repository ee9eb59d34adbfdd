"""Reading transaction bodies with bounded memory.

A transaction can be tens of MiB (appservice.max_body_size). Reading one the plain aiohttp
way holds it several times over (aiohttp's buffer and its copy, the decoded text, the parsed
events, their stored JSON), and parallel ones add up: four 60 MiB bodies took ~550 MiB
(bench/bench_large_bodies.py). Here a body is read once into one buffer and hashed while it
arrives, the buffer is released as soon as it is decoded, and bodies over
:data:`LARGE_BODY` (or of unknown length) take one of :data:`LARGE_BODY_SLOTS` slots for
their whole handling, so at most that many are in memory at once; others wait, with their
data left in the socket. Synapse sends one transaction at a time (docs/matrix-side.md §1.3),
so the wait never slows it down.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

LARGE_BODY = 1024 * 1024
LARGE_BODY_SLOTS = 1
READ_CHUNK = 1024 * 1024


class BodyTooLarge(Exception):
    """The body is over the configured maximum (answered 413)."""


class Body:
    """A request body read into one buffer, with its SHA-256."""

    def __init__(self, data: bytearray, sha256: str) -> None:
        self._data: bytearray | None = data
        self.size = len(data)
        self.sha256 = sha256

    def take_text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes become U+FFFD); the buffer is released,
        so this can be called once."""
        data, self._data = self._data, None
        if data is None:
            raise RuntimeError("the body was already taken")
        return data.decode("utf-8", "replace")


class BodyReader:
    """Reads bodies up to ``max_size`` bytes; at most ``slots`` large ones at a time."""

    def __init__(
        self, max_size: int, *, large: int = LARGE_BODY, slots: int = LARGE_BODY_SLOTS
    ) -> None:
        self.max_size = max_size
        self.large = large
        self._slots = asyncio.Semaphore(slots)
        self.waiting = 0  # requests waiting for a slot (for tests and metrics)

    def is_large(self, length: int | None) -> bool:
        """Whether a body of ``length`` bytes (None: not announced) needs a slot."""
        return length is None or length > self.large

    @asynccontextmanager
    async def slot(self, length: int | None) -> AsyncIterator[None]:
        """Hold a large-body slot (if ``length`` needs one) for the body's whole handling."""
        if not self.is_large(length):
            yield
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    async def read(self, request: web.Request) -> Body:
        """The whole body of ``request``; :class:`BodyTooLarge` past ``max_size``."""
        length = request.content_length
        if length is not None and length > self.max_size:
            raise BodyTooLarge
        stream = request.content
        stream.set_read_chunk_size(READ_CHUNK)
        # One buffer of the announced size, filled in place: no copy of the whole body.
        data = bytearray(length or 0)
        view = memoryview(data)
        digest = hashlib.sha256()
        filled = 0
        async for chunk in stream.iter_any():
            end = filled + len(chunk)
            if end > self.max_size:
                raise BodyTooLarge
            digest.update(chunk)
            if end <= len(data):
                view[filled:end] = chunk
            else:
                view.release()
                del data[filled:]
                data += chunk
                view = memoryview(data)
            filled = end
        view.release()
        del data[filled:]
        return Body(data, digest.hexdigest())

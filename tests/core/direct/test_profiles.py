"""The Session name of a login comes from its owner's Matrix name, cleaned first; the bot's
Session picture is renewed on the file server before it expires."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import aiohttp

from bridge.core.direct.profiles import AVATAR_RENEW_AFTER_S, Renew, SessionProfiles
from bridge.session import dm_media
from bridge.session.files import FileServerClient, FileServerUnreachable
from bridge.session.messages import Profile
from tests.images import tiny_png
from tests.sessionnet.extras import serve
from tests.sessionnet.fileserver import FileServer


class FakeClient:
    def __init__(self) -> None:
        self.profile: Any = None
        self.session_id = SimpleNamespace(value="05" + "ab" * 32)
        self.names: list[str] = []

    async def set_profile(self, name: str) -> None:
        self.names.append(name)
        self.profile = SimpleNamespace(display_name=name)


async def test_a_matrix_name_reaches_session_without_controls_escapes_or_overrides() -> None:
    client = FakeClient()
    await SessionProfiles.update_name(client, "Al\u202eice\x00 \x1b[5mB\x07")  # type: ignore[arg-type]
    assert client.names == ["Alice B"]
    await SessionProfiles.update_name(client, "\u202e\x00")  # type: ignore[arg-type]
    assert client.names == ["Alice B"]  # nothing left: the name is kept


class MemoryKV:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> bool:
        return self.values.pop(key, None) is not None


class UploadingClient:
    """The bot's client as far as its picture goes: set_profile uploads for real."""

    def __init__(self, files: FileServerClient) -> None:
        self.files = files
        self.profile: Any = Profile(display_name="Bridge bot")
        self.uploads = 0

    async def set_profile(self, name: str | None, avatar: bytes | None) -> Profile:
        assert avatar is not None
        url, key = await dm_media.upload_avatar(self.files, avatar)
        self.uploads += 1
        self.profile = Profile(name, url, key, int(time.time()))
        return self.profile


@asynccontextmanager
async def avatar_world(
    renew_with: Callable[[FileServerClient], Renew] | None = None,
) -> AsyncIterator[tuple[SessionProfiles, UploadingClient, FileServer, list[float]]]:
    server, now = FileServer(), [1_000_000.0]
    server.clock = lambda: now[0]
    runner, url = await serve("127.0.0.1", server.make_app())
    try:
        async with aiohttp.ClientSession() as http:
            files = FileServerClient(http, url)
            renew = renew_with(files) if renew_with else files.extend

            async def download(mxc: str) -> bytes:
                assert mxc == AVATAR
                return tiny_png()

            profiles = SessionProfiles(
                cast(Any, None), cast(Any, MemoryKV()), download, renew, clock=lambda: now[0]
            )
            client = UploadingClient(files)
            await profiles.refresh_bot_avatar(cast(Any, client), AVATAR)
            yield profiles, client, server, now
    finally:
        await runner.cleanup()


AVATAR = "mxc://example.org/bot"
DAY = 86_400


async def test_the_bots_picture_is_renewed_before_the_file_server_drops_it() -> None:
    async with avatar_world() as (profiles, client, server, now):
        assert client.uploads == 1
        url = client.profile.avatar_url
        now[0] += AVATAR_RENEW_AFTER_S - DAY
        assert await profiles.keep_bot_avatar(cast(Any, client), AVATAR) == "fresh"
        assert server.extended == 0
        now[0] += DAY  # 12 days after the upload: renewed, not uploaded again
        assert await profiles.keep_bot_avatar(cast(Any, client), AVATAR) == "renewed"
        assert (server.extended, client.uploads) == (1, 1)
        (stored,) = server.files.values()
        assert stored.expires == now[0] + 14 * DAY
        assert await profiles.keep_bot_avatar(cast(Any, client), AVATAR) == "fresh"
        # a restart with the same picture checks too, and keeps the same URL
        profile = await profiles.bot_profile("Bridge bot", AVATAR)
        assert profile.avatar_url == url
        now[0] += AVATAR_RENEW_AFTER_S
        await profiles.refresh_bot_avatar(cast(Any, client), AVATAR)
        assert (server.extended, client.uploads) == (2, 1)


async def test_a_picture_the_server_cannot_renew_is_uploaded_again() -> None:
    async with avatar_world() as (profiles, client, server, now):
        old = client.profile.avatar_url
        server.files.clear()  # expired, or a server without the route: 404 either way
        now[0] += AVATAR_RENEW_AFTER_S
        assert await profiles.keep_bot_avatar(cast(Any, client), AVATAR) == "uploaded"
        assert client.uploads == 2 and len(server.files) == 1
        new = await profiles.bot_profile("Bridge bot", AVATAR)
        assert new.avatar_url == client.profile.avatar_url and new.avatar_key is not None
        assert await profiles.keep_bot_avatar(cast(Any, client), AVATAR) == "fresh"
        assert client.profile.avatar_url != old  # a new key, so a new file


async def test_an_unreachable_file_server_is_tried_again_later() -> None:
    def unreachable(files: FileServerClient) -> Renew:
        async def renew(url: str) -> None:
            raise FileServerUnreachable("cannot reach file server: ClientConnectorError")

        return renew

    async with avatar_world(unreachable) as (profiles, client, _server, now):
        now[0] += AVATAR_RENEW_AFTER_S
        assert await profiles.keep_bot_avatar(cast(Any, client), AVATAR) == "later"
        assert client.uploads == 1

"""The file server client against the devnet file server (docs/session-protocol.md §2.6, §7.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session.attachments import decrypt_attachment, encrypt_attachment
from bridge.session.files import (
    DEFAULT_FILE_SERVER,
    FileNotFound,
    FileServerClient,
    FileServerUnreachable,
    FileServerUrl,
    FileTooLarge,
    InvalidFileUrl,
    build_file_url,
    parse_file_server_url,
)
from tests.sessionnet.extras import serve
from tests.sessionnet.fileserver import FileServer

KEY = "b8eef9821445ae16e2e97ef8aa6fe782fd11ad5253cd6723b281341dba22e371"


@asynccontextmanager
async def file_server(**kwargs: object) -> AsyncIterator[tuple[FileServer, FileServerClient]]:
    server = FileServer()
    runner, url = await serve("127.0.0.1", server.make_app())
    try:
        async with aiohttp.ClientSession() as http:
            yield server, FileServerClient(http, url, **kwargs)  # type: ignore[arg-type]
    finally:
        await runner.cleanup()


async def test_upload_download_info_of_an_encrypted_attachment() -> None:
    plaintext = b"attachment bytes " * 1000
    encrypted = encrypt_attachment(plaintext)
    async with file_server() as (_server, client):
        uploaded = await client.upload(encrypted.blob)
        assert len(uploaded.id) == 44 and uploaded.url == f"{client.base_url}/file/{uploaded.id}"
        assert uploaded.expires is not None
        blob = await client.download(uploaded.url)
        assert blob == await client.download(uploaded.id) == encrypted.blob
        assert (
            decrypt_attachment(blob, encrypted.key, encrypted.digest, encrypted.size) == plaintext
        )
        info = await client.info(uploaded.id)
        assert info.size == len(encrypted.blob) and info.expires == uploaded.expires


async def test_same_content_same_id_and_ttl_header() -> None:
    async with file_server() as (server, client):
        first = await client.upload(b"same", ttl=3600)
        second = await client.upload(b"same", ttl=3600)
        assert first.id == second.id and len(server.files) == 1
        assert first.expires is not None
        assert abs(first.expires - server.clock() - 3600) < 60


async def test_pubkey_and_deterministic_fragments_go_into_the_url() -> None:
    async with file_server(server_pubkey=KEY) as (_server, client):
        uploaded = await client.upload(b"det", deterministic=True)
        assert uploaded.url.endswith(f"/file/{uploaded.id}#p={KEY}&d")
        assert await client.download(uploaded.url) == b"det"


async def test_size_limit_missing_files_and_unreachable() -> None:
    async with file_server() as (_server, client):
        with pytest.raises(FileTooLarge):
            await client.upload(bytes(10_000_001))  # refused before sending
        client.max_bytes = 20_000_000
        with pytest.raises(FileTooLarge):  # the server's 413
            await client.upload(bytes(10_000_001))
        assert len(await client.download((await client.upload(bytes(10_000_000))).id)) == 10**7
        with pytest.raises(FileNotFound):
            await client.download("A" * 44)
        url = client.base_url
    async with aiohttp.ClientSession() as http:
        with pytest.raises(FileServerUnreachable):
            await FileServerClient(http, url).download("abc")


def test_file_urls_parse_and_build() -> None:
    url = f"{DEFAULT_FILE_SERVER}/file/12345#p={KEY}&d"
    parsed = parse_file_server_url(url)
    assert parsed == FileServerUrl(DEFAULT_FILE_SERVER, "12345", KEY, True)
    assert str(parsed) == url
    assert parse_file_server_url(f"{DEFAULT_FILE_SERVER}/file/abc_-9#d").deterministic
    plain = parse_file_server_url("https://files.example:8443/fs/file/xyz")
    assert (plain.server, plain.file_id, plain.server_pubkey) == (
        "https://files.example:8443/fs",
        "xyz",
        None,
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/file/1",
        "http://host/files/1",
        "http://host/file/",
        "http://host/file/a b",
        "http://host/file/1?x=y",
        "http://host/file/1#p=zz",
        "/file/1",
    ],
)
def test_bad_file_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidFileUrl):
        parse_file_server_url(url)


@given(
    file_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    key=st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex),
    deterministic=st.booleans(),
)
def test_build_then_parse_round_trips(file_id: str, key: str | None, deterministic: bool) -> None:
    url = build_file_url("http://127.0.0.1:1234", file_id, key, deterministic)
    assert parse_file_server_url(url) == FileServerUrl(
        "http://127.0.0.1:1234", file_id, key, deterministic
    )


@given(st.text(max_size=80))
def test_parsing_random_text_only_raises_invalid_file_url(text: str) -> None:
    with suppress(InvalidFileUrl):
        parse_file_server_url(text)

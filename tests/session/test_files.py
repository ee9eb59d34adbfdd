"""The file server client against the devnet file server (docs/session-protocol.md §2.6, §7.1)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session import dm_media
from bridge.session.attachments import (
    AttachmentTooLarge,
    decrypt_attachment,
    encrypt_attachment,
)
from bridge.session.files import (
    DEFAULT_FILE_SERVER,
    MAX_FILE_BYTES,
    FileNotFound,
    FileServerClient,
    FileServerUnreachable,
    FileServerUrl,
    FileTooLarge,
    InvalidFileUrl,
    build_file_url,
    fragment_key,
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


async def test_the_limit_counts_the_plaintext_not_the_encrypted_blob() -> None:
    # 9 900 000 bytes pad to 10 000 000 and encrypt to a 10 000 064-byte blob: desktop sends
    # such a file, so the bridge must too (§7.1). One byte over 10 000 000 is refused before
    # anything is uploaded.
    data = os.urandom(1000) * 9_900
    async with file_server() as (server, client):
        pointer = await dm_media.upload_attachment(client, data, "big.bin", "x/y")
        assert pointer.size == len(data) == 9_900_000
        assert [len(f.data) for f in server.files.values()] == [10_000_064]
        assert await dm_media.download_attachment(client, pointer) == data
        with pytest.raises(AttachmentTooLarge, match="10000001 bytes is over"):
            await dm_media.upload_attachment(client, bytes(10_000_001), "huge.bin", "x/y")
        assert len(server.files) == 1


async def test_extend_renews_a_file_by_id_or_url() -> None:
    async with file_server(server_pubkey=KEY) as (server, client):
        uploaded = await client.upload(b"avatar", ttl=3600)
        now = server.clock()
        expires = await client.extend(uploaded.url)  # the URL's #p= is not sent
        assert expires is not None and abs(expires - now - server.default_ttl) < 60
        assert await client.extend(uploaded.id, ttl=30 * 86400) == pytest.approx(
            now + 30 * 86400, abs=60
        )
        assert (await client.info(uploaded.id)).expires == pytest.approx(now + 30 * 86400, abs=60)
        with pytest.raises(FileNotFound):
            await client.extend("A" * 44)


async def test_pubkey_and_deterministic_fragments_go_into_the_url() -> None:
    async with file_server(server_pubkey=KEY) as (_server, client):
        uploaded = await client.upload(b"det", deterministic=True)
        assert uploaded.url.endswith(f"/file/{uploaded.id}#p={KEY}&d")
        assert await client.download(uploaded.url) == b"det"


async def test_size_limit_missing_files_and_unreachable() -> None:
    assert MAX_FILE_BYTES == 10_000_064  # the blob of a 10 000 000-byte file (§7.1, §7.2)
    async with file_server() as (_server, client):
        with pytest.raises(FileTooLarge):
            await client.upload(bytes(MAX_FILE_BYTES + 1))  # refused before sending
        client.max_bytes = 20_000_000
        with pytest.raises(FileTooLarge):  # the server's 413
            await client.upload(bytes(MAX_FILE_BYTES + 1))
        blob = bytes(MAX_FILE_BYTES)
        assert await client.download((await client.upload(blob)).id) == blob
        with pytest.raises(FileNotFound):
            await client.download("A" * 44)
        url = client.base_url
    async with aiohttp.ClientSession() as http:
        with pytest.raises(FileServerUnreachable):
            await FileServerClient(http, url).download("abc")


def test_only_the_default_server_under_its_own_key_goes_without_p() -> None:
    other = "ab" * 32
    assert fragment_key(DEFAULT_FILE_SERVER, None) is None
    assert fragment_key(DEFAULT_FILE_SERVER + "/", KEY.upper()) is None
    assert fragment_key(DEFAULT_FILE_SERVER, other) == other
    assert fragment_key("https://files.example", other.upper()) == other
    assert fragment_key("https://files.example", None) is None


async def test_downloads_ignore_the_fragment_whatever_it_holds() -> None:
    async with file_server(server_pubkey=KEY) as (_server, client):
        uploaded = await client.upload(b"blob")
        assert uploaded.url == f"{client.base_url}/file/{uploaded.id}#p={KEY}"
        bare = f"{client.base_url}/file/{uploaded.id}"
        for url in (uploaded.url, f"{bare}#d&p={KEY}", f"{bare}#p=zz", f"{bare}#"):
            assert await client.download(url) == b"blob"


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

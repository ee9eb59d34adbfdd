from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bridge.core.downloads import AllowedDownloads, DownloadRefused, GuardedFiles, origin


async def fake_download(url: str) -> bytes:
    return url.encode()


def test_origin_normalises_default_ports_and_case() -> None:
    assert origin("HTTP://FileV2.getsession.org/file/1#p=ab") == "http://filev2.getsession.org:80"
    assert origin("https://x.org:8443/a") == "https://x.org:8443"


async def test_only_allowed_servers_are_fetched() -> None:
    download = AllowedDownloads(fake_download, ["http://filev2.getsession.org"])
    assert (
        await download("http://filev2.getsession.org/file/7")
        == b"http://filev2.getsession.org/file/7"
    )
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://filev2.getsession.org:8080/file/7",
        "https://filev2.getsession.org/file/7",
        "file:///etc/passwd",
    ):
        with pytest.raises(DownloadRefused):
            await download(url)
    download.allow("https://community.example/room?public_key=00")
    assert await download("https://community.example/room/x/file/1")


def test_origins_of_odd_urls() -> None:
    assert origin("http://[::1]:8080/file/1") == "http://[::1]:8080"
    assert origin("http://Files.Example.org./file/1") == "http://files.example.org:80"
    with pytest.raises(DownloadRefused):
        origin("http://files.example.org:99999/file/1")


def test_internal_addresses_only_for_hosts_named_explicitly() -> None:
    """The configured file server may be anything (the operator named it), and so may the
    hosts of session.internal_hosts; a community server is bridged by a user's command, so
    neither its name nor an address in its URL makes it internal."""
    download = AllowedDownloads(fake_download, ["http://files.internal:8080"], ["10.0.0.5"])
    assert download.internal_allowed("files.internal")
    assert download.internal_allowed("10.0.0.5")
    download.allow("http://127.0.0.1:3000/lobby?public_key=00")
    download.allow("http://[fd00::5]:3000/lobby?public_key=00")
    download.allow("https://sogs.example.org/lobby?public_key=00")
    download.allow("http://10.0.0.5:8080/lobby?public_key=00")
    assert not download.internal_allowed("127.0.0.1")
    assert not download.internal_allowed("fd00::5")
    assert not download.internal_allowed("sogs.example.org")
    assert not download.internal_allowed("localhost")
    download.check_url("https://sogs.example.org/file/1")
    download.check_url("http://127.0.0.1:3000/room/lobby/file/1")  # allowed, on public only
    with pytest.raises(DownloadRefused):
        download.check_url("http://127.0.0.1:3001/file/1")


async def test_guarded_files_upload_as_they_are_and_download_through_the_list() -> None:
    uploaded: list[bytes] = []

    class Files:
        async def upload(self, data: bytes, /) -> Any:
            uploaded.append(data)
            return SimpleNamespace(url="http://filev2.getsession.org/file/1")

        async def download(self, url: str, /) -> bytes:
            raise AssertionError("downloads must go through the allow-list")

    downloads = AllowedDownloads(fake_download, ["http://filev2.getsession.org"])
    files = GuardedFiles(Files(), downloads)
    assert (await files.upload(b"x")).url == "http://filev2.getsession.org/file/1"
    assert uploaded == [b"x"]
    assert await files.download("http://filev2.getsession.org/file/1") == (
        b"http://filev2.getsession.org/file/1"
    )
    with pytest.raises(DownloadRefused):
        await files.download("http://127.0.0.1:8080/file/x")

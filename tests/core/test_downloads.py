from __future__ import annotations

import pytest

from bridge.core.downloads import AllowedDownloads, DownloadRefused, origin


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

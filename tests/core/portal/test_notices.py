"""What the bot tells a user about a failure never shows a server address."""

from __future__ import annotations

import pytest

from bridge.core.portal.notices import without_addresses


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "cannot reach community server http://127.0.0.1:39001: ClientConnectorError.",
            "cannot reach community server <server>: ClientConnectorError.",
        ),
        (
            "127.0.0.1:39001: ClientConnectorError: Cannot connect to host 10.0.0.7:22021",
            "<server>: ClientConnectorError: Cannot connect to host <server>",
        ),
        ("node [fd00::1]:22021 is down", "node <server> is down"),
        ("node snode.internal:22021 is down", "node <server> is down"),
        ("see https://files.internal/file/x?id=1.", "see <server>."),
    ],
)
def test_addresses_are_removed(text: str, shown: str) -> None:
    assert without_addresses(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "Only @alice:example.org can send to Session from this chat.",
        "send `login` to the bridge bot (@sessionbot:matrix.example.org:8448)",
        "The file is too large for Session (12.3 MB; Session accepts at most 10.0 MB).",
        "posted at 10:30",
    ],
)
def test_ordinary_text_stays(text: str) -> None:
    assert without_addresses(text) == text

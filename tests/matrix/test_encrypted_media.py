"""Files in encrypted rooms (bridge/matrix/media.py, e2ee_media.py; README, Encryption): the
upload names ciphertext in ``file``, the download decrypts, and the key travels in the queued
operations that download later."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.core.community.payloads import PostMedia, PostPayload
from bridge.core.direct.payloads import DirectPayload
from bridge.core.portal.ops import MediaOp
from bridge.matrix import media
from bridge.matrix.e2ee_media import AttachmentCipher
from bridge.matrix.media import EncryptedFileError, download_file, upload_file

ENCRYPTED_ROOM, PLAIN_ROOM = "!enc:hs", "!plain:hs"


class FakeIntent:
    """Keeps what is uploaded, as the media repository would."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[bytes, str | None, str | None]] = {}

    async def upload_media(
        self, data: bytes, mime_type: str | None = None, filename: str | None = None
    ) -> str:
        mxc = f"mxc://hs/{len(self.stored)}"
        self.stored[mxc] = (data, mime_type, filename)
        return mxc

    async def download(self, mxc: str) -> bytes:
        return self.stored[mxc][0]


async def _is_encrypted(room_id: str) -> bool:
    return room_id == ENCRYPTED_ROOM


@pytest.fixture
def cipher() -> Iterator[AttachmentCipher]:
    installed = AttachmentCipher(_is_encrypted)
    media.install(installed)
    yield installed
    media.uninstall()


async def test_a_file_for_an_encrypted_room_is_uploaded_as_ciphertext(
    cipher: AttachmentCipher,
) -> None:
    intent = FakeIntent()
    data = b"a picture" * 100
    up = await upload_file(
        intent,  # type: ignore[arg-type]
        ENCRYPTED_ROOM,
        data,
        mime_type="image/png",
        filename="p.png",
    )
    stored, mime, name = intent.stored[up.mxc]
    assert stored != data and data not in stored
    assert (mime, name) == ("application/octet-stream", None)  # nothing about the file leaks
    assert up.file is not None and up.file["url"] == up.mxc and up.file["v"] == "v2"
    content = up.apply({"msgtype": "m.image", "url": up.mxc, "info": {"mimetype": "image/png"}})
    assert "url" not in content and content["file"] == up.file
    assert content["info"] == {"mimetype": "image/png"}
    assert await download_file(intent.download, up.mxc, up.file) == data


async def test_a_file_for_a_plain_room_is_uploaded_as_it_is(cipher: AttachmentCipher) -> None:
    intent = FakeIntent()
    up = await upload_file(
        intent,  # type: ignore[arg-type]
        PLAIN_ROOM,
        b"text",
        mime_type="text/plain",
        filename="t.txt",
    )
    assert intent.stored[up.mxc] == (b"text", "text/plain", "t.txt") and up.file is None
    content = {"msgtype": "m.file", "url": up.mxc}
    assert up.apply(content) == content
    assert await download_file(intent.download, up.mxc, None) == b"text"


async def test_a_tampered_or_keyless_file_is_an_error(cipher: AttachmentCipher) -> None:
    ciphertext, file = cipher.encrypt_file(b"secret")
    flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]

    async def fetch(_: str) -> bytes:
        return flipped

    with pytest.raises(EncryptedFileError, match="could not be decrypted"):
        await download_file(fetch, "mxc://hs/x", file)
    with pytest.raises(EncryptedFileError, match="missing"):
        await download_file(fetch, "mxc://hs/x", {"iv": file["iv"]})


async def test_without_encryption_an_encrypted_file_cannot_be_read() -> None:
    async def fetch(_: str) -> bytes:
        return b"x"

    with pytest.raises(EncryptedFileError, match="encryption is off"):
        await download_file(fetch, "mxc://hs/x", {"url": "mxc://hs/x"})
    intent = FakeIntent()
    up = await upload_file(
        intent,  # type: ignore[arg-type]
        ENCRYPTED_ROOM,
        b"x",
        mime_type="text/plain",
        filename="x.txt",
    )
    assert up.file is None  # no cipher installed: every room is treated as unencrypted


FILE: dict[str, Any] = {
    "url": "mxc://hs/e",
    "key": {"k": "a2V5", "kty": "oct", "alg": "A256CTR", "key_ops": ["decrypt"], "ext": True},
    "iv": "aXY",
    "hashes": {"sha256": "aGFzaA"},
    "v": "v2",
}


def test_queued_media_keep_the_file_key() -> None:
    op = MediaOp("mxc://hs/e", "p.png", "image/png", file=FILE)
    payload = DirectPayload(op, "@a:hs")
    assert DirectPayload.from_json(payload.to_json()) == payload
    post = PostPayload(
        "", "Ann", "@a:hs", PostMedia("mxc://hs/e", "p.png", "image/png", file=FILE)
    )
    back = PostPayload.from_json(post.to_json())
    assert back.media is not None and back.media.file == FILE
    # Rows queued before encryption have no key and read back without one.
    plain = json.loads(DirectPayload(MediaOp("mxc://hs/p", "p", "image/png"), "@a:hs").to_json())
    assert "file" not in plain

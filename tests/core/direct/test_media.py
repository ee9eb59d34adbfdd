"""Shapes of direct-chat attachments, both ways (pure)."""

from __future__ import annotations

import pytest

from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, msgtype_for
from bridge.core.direct.chats import direct_key, parse_direct_key
from bridge.core.direct.media import (
    MediaRefused,
    attachment_content,
    attachment_failed_notice,
    human_size,
    media_payload,
)
from bridge.session.messages import Attachment
from bridge.session.messages.model import VOICE_MESSAGE_FLAG

OURS = "05" + "a1" * 32
PEER = "05" + "b2" * 32


def test_direct_key_round_trips() -> None:
    assert parse_direct_key(direct_key(OURS, PEER)) == (OURS, PEER)


@pytest.mark.parametrize(
    ("mime", "voice", "msgtype"),
    [
        ("image/png", False, "m.image"),
        ("video/mp4", False, "m.video"),
        ("audio/ogg", False, "m.audio"),
        ("application/octet-stream", True, "m.audio"),
        ("application/pdf", False, "m.file"),
        (None, False, "m.file"),
    ],
)
def test_msgtype_follows_the_mime_type(mime: str | None, voice: bool, msgtype: str) -> None:
    assert msgtype_for(mime, voice) == msgtype


def test_image_attachment_content_has_info_and_mentions() -> None:
    pointer = Attachment(
        url="http://files/file/1", content_type="image/png", file_name="a.png", width=4, height=3
    )
    content = attachment_content(pointer, "mxc://hs/abc", 123)
    assert content == {
        "msgtype": "m.image",
        "body": "a.png",
        "filename": "a.png",
        "url": "mxc://hs/abc",
        "info": {"mimetype": "image/png", "size": 123, "w": 4, "h": 3},
        "m.mentions": {},
    }


def test_voice_note_is_marked_for_element() -> None:
    pointer = Attachment(content_type="audio/aac", flags=VOICE_MESSAGE_FLAG)
    content = attachment_content(pointer, "mxc://hs/v", 10)
    assert content["msgtype"] == "m.audio"
    assert content["body"] == "voice message"
    assert "org.matrix.msc3245.voice" in content


def test_caption_becomes_the_body() -> None:
    pointer = Attachment(content_type="image/jpeg", file_name="p.jpg", caption="look")
    content = attachment_content(pointer, "mxc://hs/p", 1)
    assert (content["body"], content["filename"]) == ("look", "p.jpg")


def test_failed_attachment_is_a_notice() -> None:
    notice = attachment_failed_notice(Attachment(file_name="x.bin"), "it could not be downloaded")
    assert notice["msgtype"] == "m.notice" and "x.bin" in notice["body"]
    assert notice["m.mentions"] == {}


def test_media_payload_of_a_matrix_file() -> None:
    payload = media_payload(
        {
            "msgtype": "m.file",
            "body": "notes.txt",
            "filename": "notes.txt",
            "url": "mxc://hs/n",
            "info": {"mimetype": "text/plain", "size": 5},
        }
    )
    assert payload.to_json() == {
        "op": "media",
        "url": "mxc://hs/n",
        "filename": "notes.txt",
        "mimetype": "text/plain",
        "caption": None,
        "voice": False,
    }


def test_media_payload_keeps_captions_sizes_and_voice() -> None:
    payload = media_payload(
        {
            "msgtype": "m.audio",
            "body": "listen",
            "filename": "v.ogg",
            "url": "mxc://hs/v",
            "info": {"mimetype": "audio/ogg", "w": 1, "h": 2},
            "org.matrix.msc3245.voice": {},
        }
    )
    assert payload.caption == "listen" and payload.voice is True
    assert (payload.width, payload.height) == (1, 2)


def test_too_large_files_are_refused_with_the_limit() -> None:
    content = {
        "msgtype": "m.video",
        "body": "big.mp4",
        "url": "mxc://hs/b",
        "info": {"size": MAX_SESSION_FILE_BYTES + 1},
    }
    with pytest.raises(MediaRefused, match=r"too large for Session .*10\.0 MB"):
        media_payload(content)


@pytest.mark.parametrize(
    "content",
    [
        {"msgtype": "m.file", "body": "x"},
        {"msgtype": "m.file", "body": "x", "url": "https://example.org/x"},
        {"msgtype": "m.location", "body": "x", "url": "mxc://hs/x"},
        {"msgtype": "m.file", "body": "x", "file": {"url": "mxc://hs/enc"}},
    ],
)
def test_unusable_media_is_refused(content: dict[str, object]) -> None:
    with pytest.raises(MediaRefused):
        media_payload(content)


def test_human_size() -> None:
    assert [human_size(n) for n in (12, 1_500, 12_345_678)] == ["12 bytes", "2 kB", "12.3 MB"]

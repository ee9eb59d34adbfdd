"""Pure media helpers: MIME sniffing, image sizes, Matrix media content both ways."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.convert.media import (
    caption_parts,
    default_filename,
    human_size,
    image_size,
    matrix_media,
    media_content,
    msgtype_for,
    sniff_mimetype,
    with_caption,
)
from bridge.session.messages import Attachment, VisibleMessage, content_to_proto
from tests.images import tiny_png


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 8


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    dims = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 22) + b"WEBP" + chunk + dims


def test_msgtype_follows_the_major_type() -> None:
    assert msgtype_for("image/png") == "m.image"
    assert msgtype_for("VIDEO/mp4") == "m.video"
    assert msgtype_for("audio/ogg") == "m.audio"
    assert msgtype_for("application/pdf") == "m.file"
    assert msgtype_for("") == "m.file"


def test_sniffing_common_files() -> None:
    assert sniff_mimetype(tiny_png()) == "image/png"
    assert sniff_mimetype(jpeg(3, 2)) == "image/jpeg"
    assert sniff_mimetype(gif(1, 1)) == "image/gif"
    assert sniff_mimetype(webp_vp8x(5, 6)) == "image/webp"
    assert sniff_mimetype(b"OggS\x00rest") == "audio/ogg"
    assert sniff_mimetype(b"%PDF-1.7") == "application/pdf"
    assert sniff_mimetype(b"\x00\x00\x00\x18ftypisom") == "video/mp4"
    assert sniff_mimetype(b"hello") is None


def test_image_sizes_from_headers() -> None:
    assert image_size(tiny_png()) == (1, 1)
    assert image_size(gif(640, 480)) == (640, 480)
    assert image_size(jpeg(1280, 960)) == (1280, 960)
    assert image_size(webp_vp8x(300, 200)) == (300, 200)
    assert image_size(b"\xff\xd8\xff") is None
    assert image_size(b"not an image") is None


@given(st.binary(max_size=64))
def test_image_size_never_raises(data: bytes) -> None:
    for prefix in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP"):
        image_size(prefix + data)


def test_default_names_and_sizes() -> None:
    assert default_filename("image/jpeg") == "image.jpg"
    assert default_filename("audio/ogg", 1) == "audio-2.ogg"
    assert default_filename("application/x-unknown") == "file.bin"
    assert human_size(999) == "999 bytes"
    assert human_size(12_345) == "12.3 kB"
    assert human_size(10_000_000) == "10.0 MB"


def test_media_content_shapes() -> None:
    image = media_content(
        mxc="mxc://x/a", mimetype="image/png", size=10, filename="a.png", width=2, height=3
    )
    assert image == {
        "msgtype": "m.image",
        "body": "a.png",
        "filename": "a.png",
        "url": "mxc://x/a",
        "info": {"mimetype": "image/png", "size": 10, "w": 2, "h": 3},
        "m.mentions": {},
    }
    doc = media_content(
        mxc="mxc://x/b", mimetype="application/pdf", size=5, filename="b.pdf", width=2, height=3
    )
    assert doc["msgtype"] == "m.file" and "w" not in doc["info"]
    voice = media_content(
        mxc="mxc://x/c", mimetype="audio/ogg", size=5, filename="v.ogg", voice=True
    )
    assert voice["org.matrix.msc3245.voice"] == {}
    assert voice["org.matrix.msc1767.audio"] == {"waveform": []}


def test_matrix_media_reads_files_and_captions() -> None:
    media = matrix_media(
        {
            "msgtype": "m.image",
            "body": "look at this",
            "filename": "cat.jpg",
            "url": "mxc://hs/cat",
            "info": {"mimetype": "image/jpeg", "size": 1234, "w": 10, "h": 20},
        }
    )
    assert media is not None
    assert (media.filename, media.caption, media.mimetype) == (
        "cat.jpg",
        "look at this",
        "image/jpeg",
    )
    assert (media.size, media.width, media.height, media.voice) == (1234, 10, 20, False)
    plain = matrix_media({"msgtype": "m.file", "body": "a.bin", "url": "mxc://hs/a"})
    assert plain is not None
    assert (plain.filename, plain.caption, plain.mimetype, plain.size) == (
        "a.bin",
        "",
        "application/octet-stream",
        None,
    )
    voice = matrix_media(
        {"msgtype": "m.audio", "body": "v", "url": "mxc://hs/v", "org.matrix.msc3245.voice": {}}
    )
    assert voice is not None and voice.voice


def test_matrix_media_names_and_captions_lose_controls_and_bidi_overrides() -> None:
    media = matrix_media(
        {
            "msgtype": "m.file",
            "body": "see\x00 \x1b[31mthis\x07",
            "filename": "invoice\u202egpj.exe\n",
            "url": "mxc://hs/f",
        }
    )
    assert media is not None
    assert (media.filename, media.caption) == ("invoicegpj.exe ", "see this")


def test_matrix_media_refuses_what_it_cannot_send() -> None:
    assert matrix_media({"msgtype": "m.text", "body": "x"}) is None
    # An encrypted file without its key, IV and hash cannot be read.
    encrypted = {"msgtype": "m.image", "body": "x", "file": {"url": "mxc://hs/e"}}
    assert matrix_media(encrypted) is None
    assert matrix_media({"msgtype": "m.image", "body": "x", "url": "https://evil/x"}) is None


def test_matrix_media_takes_an_encrypted_file_with_its_keys() -> None:
    file = {
        "url": "mxc://hs/e",
        "key": {"kty": "oct", "alg": "A256CTR", "k": "a2V5", "key_ops": ["decrypt"], "ext": True},
        "iv": "aXY",
        "hashes": {"sha256": "aGFzaA"},
        "v": "v2",
    }
    content = {"msgtype": "m.image", "body": "x.png", "file": file, "info": {"size": 3}}
    media = matrix_media(content)
    assert media is not None
    assert (media.mxc, media.file, media.size) == ("mxc://hs/e", file, 3)
    unencrypted = matrix_media({"msgtype": "m.image", "body": "x.png", "url": "mxc://hs/p"})
    assert unencrypted is not None and unencrypted.file is None
    broken = {**file, "hashes": {}}
    assert matrix_media({**content, "file": broken}) is None


def test_matrix_media_ignores_sizes_no_session_field_can_carry() -> None:
    # Beyond canonical JSON's 2**53 - 1, or Session's 32-bit attachment fields: encoding the
    # attachment failed, and the file was never sent.
    info = {"w": 2**60, "h": 2**32, "size": 2**70}
    content = {"msgtype": "m.image", "body": "a.png", "url": "mxc://x/a", "info": info}
    media = matrix_media(content)
    assert media is not None
    assert (media.width, media.height, media.size) == (None, None, None)
    info.update(w=2**32 - 1, h=1, size=2**53 - 1)
    media = matrix_media(content)
    assert media is not None
    assert (media.width, media.height, media.size) == (2**32 - 1, 1, 2**53 - 1)
    attachment = Attachment(
        url="http://files/file/1",
        key=bytes(64),
        size=3,
        digest=bytes(32),
        content_type=media.mimetype,
        file_name=media.filename,
        width=media.width,
        height=media.height,
    )
    assert content_to_proto(VisibleMessage(body="", attachments=(attachment,)))


@given(
    st.dictionaries(
        st.sampled_from(["msgtype", "body", "filename", "url", "info"]),
        st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(), st.integers())),
    )
)
def test_matrix_media_never_raises(content: dict[str, object]) -> None:
    matrix_media(content)


# --- captions (MSC2530) ------------------------------------------------------------------


def photo(**extra: object) -> dict[str, object]:
    return {
        **media_content(mxc="mxc://x/a", mimetype="image/png", size=3, filename="dot.png"),
        **extra,
    }


def test_the_text_of_a_message_with_a_file_is_the_file_caption() -> None:
    text = {
        "msgtype": "m.text",
        "body": "look at Bob",
        "format": "org.matrix.custom.html",
        "formatted_body": 'look at <a href="https://matrix.to/#/@bob:x">Bob</a>',
        "m.mentions": {"user_ids": ["@bob:x"]},
    }
    (part,) = caption_parts(text, [photo()])
    assert part["msgtype"] == "m.image" and part["url"] == "mxc://x/a"
    assert part["body"] == "look at Bob" and part["filename"] == "dot.png"
    assert part["formatted_body"] == text["formatted_body"]
    assert part["m.mentions"] == {"user_ids": ["@bob:x"]}
    # A caption read back is the text Session gets (Matrix -> Session).
    read = matrix_media(part)
    assert read is not None and read.caption == "look at Bob" and read.filename == "dot.png"


def test_the_caption_goes_on_the_first_file_only() -> None:
    text = {"msgtype": "m.text", "body": "two", "m.mentions": {}}
    second = photo(filename="b.png", body="b.png")
    parts = caption_parts(text, [photo(), second])
    assert [p["body"] for p in parts] == ["two", "b.png"]
    assert caption_parts(None, [photo()]) == [photo()]
    assert caption_parts(text, []) == [text]


def test_a_text_without_a_file_to_carry_it_stays_an_event_of_its_own() -> None:
    text = {"msgtype": "m.text", "body": "see the file", "m.mentions": {}}
    failed = {"msgtype": "m.notice", "body": "📎 x.png: could not be downloaded"}
    assert caption_parts(text, [failed]) == [text, failed]
    # A file with a different caption of its own (a Session attachment caption) keeps it.
    own = photo(body="its own caption")
    assert caption_parts(text, [own]) == [text, own]
    # The same caption twice (Session sends it in the pointer and as the text) is one event.
    (same,) = caption_parts({**text, "body": "its own caption"}, [own])
    assert same["body"] == "its own caption" and same["msgtype"] == "m.image"
    assert with_caption(photo(), {"msgtype": "m.text", "body": ""}) is None

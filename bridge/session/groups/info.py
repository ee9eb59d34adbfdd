"""Typed view of groups::Info data and its builder (docs/groups-v2.md §2.1).

:func:`parse_info` turns the decoded ``&`` dict into a frozen :class:`Info`; :func:`info_data`
turns an :class:`Info` back into a data dict for the config writer, applying libsession's
setter rules (ints only when > 0, strings only when non-empty, truncation on a UTF-8 boundary)
and keeping every key it does not understand. Times in Info are **seconds** (§10.2 #13).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.session.groups.bencode import BValue
from bridge.session.groups.config_data import ConfigData

NAME_MAX = 100
DESCRIPTION_MAX = 2000
PICTURE_URL_MAX = 223
PICTURE_KEY_SIZE = 32
_KNOWN = frozenset({b"!", b"c", b"d", b"D", b"E", b"n", b"o", b"p", b"q"})


@dataclass(frozen=True, slots=True)
class Picture:
    """A file-server avatar: download URL and 32-byte decryption key (``p``/``q``)."""

    url: str
    key: bytes


@dataclass(frozen=True)
class Info:
    """groups::Info. ``None``/empty means the key is absent. Times are Unix seconds."""

    name: str = ""
    description: str = ""
    picture: Picture | None = None
    disappearing_timer: int | None = None  # "E": delete-after-send timer, seconds
    delete_before: int | None = None  # "d": delete messages sent before this (seconds)
    delete_attach_before: int | None = None  # "D": delete attachments sent before (seconds)
    created: int | None = None  # "c": creation time, seconds
    destroyed: bool = False  # "!"
    extra: Mapping[bytes, BValue] = field(default_factory=dict)  # unknown keys, kept

    def deletes_message(self, sent_ms: int) -> bool:
        """Whether ``d`` (seconds) orders deleting a message sent at ``sent_ms`` (ms, §2.1)."""
        return self.delete_before is not None and sent_ms < self.delete_before * 1000

    def deletes_attachments(self, sent_ms: int) -> bool:
        """Whether ``D`` (seconds) orders deleting the attachments of a message sent at ms."""
        return self.delete_attach_before is not None and sent_ms < self.delete_attach_before * 1000


def to_seconds(value: int) -> int:
    """Normalise a timestamp to seconds: ms and µs values are divided down (v1.2.0, §2.1)."""
    while value >= 10_000_000_000:  # beyond year 2286 in seconds: must be ms or µs
        value //= 1000
    return value


def decode_text(value: BValue | None) -> str:
    """A bt string as text; invalid UTF-8 is replaced, non-strings read as empty."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def positive_int(value: BValue | None) -> int | None:
    """An int value when present and > 0 (absent/zero/negative/other types → ``None``)."""
    return value if isinstance(value, int) and value > 0 else None


def truncate_utf8(text: str, limit: int) -> bytes:
    """Encode ``text`` and cut it to ``limit`` bytes without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode()


def parse_picture(url: BValue | None, key: BValue | None) -> Picture | None:
    """``p``/``q``: a picture only when the URL is non-empty and the key is 32 bytes (§2.1)."""
    if isinstance(url, bytes) and url and isinstance(key, bytes) and len(key) == PICTURE_KEY_SIZE:
        return Picture(decode_text(url), key)
    return None


def parse_info(data: Mapping[bytes, BValue]) -> Info:
    """Build the typed view from groups::Info data. Never raises on odd values: they read as
    absent, as libsession's getters do."""
    created = positive_int(data.get(b"c"))
    return Info(
        name=decode_text(data.get(b"n")),
        description=decode_text(data.get(b"o")),
        picture=parse_picture(data.get(b"p"), data.get(b"q")),
        disappearing_timer=positive_int(data.get(b"E")),
        delete_before=positive_int(data.get(b"d")),
        delete_attach_before=positive_int(data.get(b"D")),
        created=None if created is None else to_seconds(created),
        destroyed=positive_int(data.get(b"!")) is not None,
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )


def picture_data(picture: Picture | None) -> ConfigData:
    """The ``p``/``q`` keys for a picture (both or neither, §2.1/§2.2)."""
    if picture is None or not picture.url or len(picture.key) != PICTURE_KEY_SIZE:
        return {}
    return {b"p": truncate_utf8(picture.url, PICTURE_URL_MAX), b"q": picture.key}


def info_data(info: Info) -> ConfigData:
    """Data dict for the writer: setter rules of §2.1, unknown keys of ``info.extra`` kept."""
    out: ConfigData = {k: v for k, v in info.extra.items() if k not in _KNOWN}
    texts = ((b"n", info.name, NAME_MAX), (b"o", info.description, DESCRIPTION_MAX))
    for key, text, limit in texts:
        raw = truncate_utf8(text, limit)
        if raw:
            out[key] = raw
    out.update(picture_data(info.picture))
    ints = (
        (b"E", info.disappearing_timer),
        (b"d", info.delete_before),
        (b"D", info.delete_attach_before),
        (b"c", None if info.created is None else to_seconds(info.created)),
    )
    for key, number in ints:
        if number is not None and number > 0:
            out[key] = number
    if info.destroyed:
        out[b"!"] = 1
    return out

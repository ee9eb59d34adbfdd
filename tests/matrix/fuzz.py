"""A seeded generator of hostile appservice transactions, each with the answer it must get and
the good events it carries (which must be delivered exactly once).

Shapes: bodies that are no JSON, no object or have no events list; transaction ids with control
characters or too long; events that are not objects, lack ids or carry broken ones, nest
deeper than the limit (up to 100,000 levels), hold numbers of 5,000 digits; strings with lone
surrogates, NUL, raw control characters, invalid UTF-8, bidi overrides, emoji, NaN and
Infinity; junk in the ephemeral list and in unknown keys; huge bodies; repeats.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bridge.matrix.transactions import MAX_EVENT_DEPTH

ODD = [
    "\ud800",  # lone surrogates
    "\udfff",
    "\x00",
    "\x07\x1b[31m",
    "\u202e\u2066",  # bidi overrides
    "😀",
    "\U0010ffff",
    "\uffff",
    "e\u0301",
    "\u2028",
    "\ufeff",
    "\\",
    '"',
    "</script>",
    "ß",
    "\x7f\x85",
]


@dataclass
class Case:
    """One transaction to PUT: the path segment, the body, and what must come of it."""

    txn_id: str
    body: bytes
    status: int
    valid_ids: list[str] = field(default_factory=list)


class Fuzz:
    """Makes :class:`Case` s from a seed; the same seed gives the same cases."""

    def __init__(self, seed: int, *, huge: bool = True) -> None:
        self.rng = random.Random(seed)
        self.huge = huge
        self.serial = 0
        self.count = 0
        self.sent: list[Case] = []
        self._raw: dict[str, str | bytes] = {}

    # --- raw fragments that json.dumps cannot write ------------------------------------------

    def _fragment(self, raw: str | bytes) -> str:
        token = f"@@RAW{len(self._raw)}@@"
        self._raw[token] = raw
        return token

    def _encode(self, value: Any) -> bytes:
        ensure_ascii = self.rng.random() < 0.5
        text = json.dumps(value, ensure_ascii=ensure_ascii)
        data = text.encode("utf-8", "surrogatepass")  # lone surrogates as raw bytes, too
        for token, raw in self._raw.items():
            piece = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
            data = data.replace(json.dumps(token).encode(), piece)
        self._raw.clear()
        return data

    # --- values ------------------------------------------------------------------------------

    def odd_text(self) -> str:
        rng = self.rng
        parts = [
            rng.choice(ODD) if rng.random() < 0.5 else "word" for _ in range(rng.randint(0, 6))
        ]
        if self.huge and rng.random() < 0.0005:
            parts.append("y" * rng.randint(10_000, 200_000))
        return "".join(parts)

    def odd_value(self, depth: int) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth > 4 or roll < 0.35:
            return self.odd_text()
        if roll < 0.45:
            return rng.choice([None, True, False, 0, -1, 2**53 - 1, 1.5, -0.0])
        if roll < 0.5:  # not JSON: read as null
            return self._fragment(rng.choice(["NaN", "Infinity", "-Infinity", "1e99999"]))
        if roll < 0.53:  # a raw control character or invalid UTF-8 inside a string
            return self._fragment(
                rng.choice(['"a\x00b"', '"tab\there"', b'"\xff\xfe"', b'"\xc3"'])
            )
        if roll < 0.75:
            return [self.odd_value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {self.odd_text(): self.odd_value(depth + 1) for _ in range(rng.randint(0, 3))}

    def nested(self, depth: int) -> str:
        return self._fragment("[" * depth + "]" * depth)

    # --- events ------------------------------------------------------------------------------

    def valid_event(self) -> tuple[dict[str, Any], str]:
        self.serial += 1
        event_id = f"$v{self.serial}:fuzz"
        event = {
            "type": self.rng.choice(["m.room.message", "m.reaction", "org.example.custom"]),
            "room_id": f"!room{self.rng.randint(0, 9)}:fuzz",
            "event_id": event_id,
            "sender": self.rng.choice(["@u:fuzz", 5, None, "\x00"]),
            "origin_server_ts": self.rng.choice([1, -1, 2**53, "x"]),
            "content": {"body": self.odd_text(), "extra": self.odd_value(0)},
        }
        return event, event_id

    def junk_event(self) -> Any:
        rng = self.rng
        base = {"type": "m.room.message", "room_id": "!r:fuzz", "event_id": "$junk"}
        kind = rng.randrange(9)
        if kind == 0:
            return rng.choice([1, "x", None, True, [], 1.5, [base]])
        key = rng.choice(list(base))
        if kind == 1:
            return {k: v for k, v in base.items() if k != key}
        if kind == 2:
            return base | {key: rng.choice([5, None, [], {}, "", "x" * 300])}
        if kind == 3:  # escaped, so that no raw encoding turns it into U+FFFD
            bad = rng.choice(["\x00", "\n", "\ud800", "\x1b", "\x85"])
            return base | {key: self._fragment(json.dumps("!a" + bad + ":fuzz"))}
        if kind == 4:
            return base | {"content": self.nested(rng.randint(MAX_EVENT_DEPTH, 900))}
        if kind == 5 and self.huge and rng.random() < 0.05:
            return base | {"content": self.nested(100_000)}
        if kind == 6:
            return self._fragment("1" + "0" * rng.randint(4400, 6000))
        if kind == 7:
            return self._fragment(rng.choice(["NaN", "Infinity", "{}", "[]"]))
        return {"content": self.odd_value(0)}

    # --- transactions ------------------------------------------------------------------------

    def _txn_id(self) -> str:
        self.count += 1
        return str(self.count) + self.rng.choice(["", "", "", "-é", "-%25", "-~x"])

    def broken(self) -> Case:
        """A body or id that is no transaction: 400."""
        rng = self.rng
        txn_id = quote(self._txn_id(), safe="")
        bodies: list[bytes] = [
            b"",
            b"{",
            b"[]",
            b"null",
            b'"events"',
            b"{}",
            b'{"events": 5}',
            b'{"events": {}}',
            b'{"events": [] } x',
            b'{"events": [1,]}',
            b"\xff\xfe\x00",
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))),
        ]
        if self.huge:
            bodies.append(b"[" * 100_000 + b"]" * 100_000)
        body = rng.choice(bodies)
        if rng.random() < 0.3:  # a good body with a transaction id that is no id
            body = b'{"events": []}'
            txn_id = rng.choice(["a%00", "a%0A", "b%1B%5B2J", "c%C2%85", "x" * 300])
        return Case(txn_id, body, 400)

    def good(self) -> Case:
        """A transaction object with events among junk: 200, the valid events delivered."""
        rng = self.rng
        events: list[Any] = []
        valid: list[str] = []
        for _ in range(rng.randint(0, 8)):
            if rng.random() < 0.4:
                event, event_id = self.valid_event()
                events.append(event)
                valid.append(event_id)
            else:
                events.append(self.junk_event())
        body: dict[str, Any] = {"events": events}
        if rng.random() < 0.5:
            key = rng.choice(["ephemeral", "de.sorunome.msc2409.ephemeral"])
            body[key] = rng.choice([[self.junk_event(), {"type": "m.typing"}], "x", None, 5])
        if rng.random() < 0.3:
            body["de.sorunome.msc2409.to_device"] = self.odd_value(0)
        if self.huge and rng.random() < 0.002:
            body["to_device"] = self.nested(100_000)
        if self.huge and rng.random() < 0.0005:  # over LARGE_BODY: a slot and a thread
            event, event_id = self.valid_event()
            event["content"]["body"] = "z" * 1_500_000
            events.append(event)
            valid.append(event_id)
        return Case(quote(self._txn_id(), safe=""), self._encode(body), 200, valid)

    def next(self) -> Case:
        """The next case (sometimes a repeat of an earlier one, which must deliver nothing)."""
        roll = self.rng.random()
        if self.sent and roll < 0.02:
            again = self.rng.choice(self.sent)
            case = Case(again.txn_id, again.body, again.status)
        else:
            case = self.broken() if roll < 0.12 else self.good()
        self.sent.append(case)
        if len(self.sent) > 1000:
            del self.sent[: len(self.sent) - 1000]
        return case


class RawHttp:
    """A minimal HTTP/1.1 client over one keep-alive connection: an order of magnitude less
    work per request than aiohttp's client, so the run measures the server, and the path goes
    out byte for byte as given."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def put(self, path: str, body: bytes) -> int:
        """PUT ``body`` to ``path``; the status code."""
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status_line = await reader.readline()
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        await reader.readexactly(length)
        if close:
            await self.close()
        return int(status_line.split()[1])

    async def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

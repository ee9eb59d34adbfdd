"""The merge of docs/groups-v2.md §1.13 against libsession's known answers
(tests/vectors/groups-v2-merge.json, "config message example 3")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bridge.session.groups import config
from bridge.session.userconfig.merge import merge

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "vectors" / "groups-v2-merge.json").read_text()
)
HASHES = {name: bytes.fromhex(value) for name, value in VECTORS["hashes"].items()}


def _bytes(ascii_template: str) -> bytes:
    parts = re.split(r"\{(\w+)\}", ascii_template)
    out = b""
    for index, part in enumerate(parts):
        out += HASHES[part] if index % 2 else part.encode()
    return out


def test_example3_two_edits_of_m124_merge_to_upstream_bytes() -> None:
    m124 = config.parse_message(_bytes(VECTORS["m124_ascii"]), None)
    assert m124.hash == HASHES["h124"]
    dict_b = dict(m124.data[b"dictB"])  # type: ignore[arg-type]
    del dict_b[b"foo"]
    m125a = config.parse_message(
        config.next_message(m124, {**m124.data, b"dictB": dict_b}, None), None
    )
    m125b = config.parse_message(config.next_message(m124, {**m124.data, b"int1": 5}, None), None)
    assert (m125a.hash, m125b.hash) == (HASHES["h125a"], HASHES["h125b"])
    expected = _bytes(VECTORS["example3_merge_of_m125a_m125b"])
    for inputs in ([m125a, m125b], [m125b, m125a], [m125b, m124, m125a]):
        outcome = merge(inputs)
        assert outcome.merged == expected

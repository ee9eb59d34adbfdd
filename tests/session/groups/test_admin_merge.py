"""Config merging (docs/groups-v2.md §1.13) against libsession's merge examples.

Known answers: ``tests/vectors/groups-v2-merge.json``, transcribed from upstream
``tests/test_configdata.cpp`` (examples 1-4 of the merge documentation); risk #15.
"""

from __future__ import annotations

import copy
from typing import Any

from bridge.session.groups import config
from bridge.session.groups.config_data import ConfigData
from bridge.session.groups.config_merge import Merged, merge, merged_message, non_redundant
from tests.vectors import load

V: dict[str, Any] = load("groups-v2-merge")
H = {name: bytes.fromhex(value) for name, value in V["hashes"].items()}


def _fill(template: str, **extra: bytes) -> bytes:
    out = template.encode()
    for name, value in {**H, **extra}.items():
        out = out.replace(b"{" + name.encode() + b"}", value)
    return out


def _parse(bt: bytes) -> config.ConfigMessage:
    return config.parse_message(bt, None)


def _next(previous: config.ConfigMessage, data: ConfigData) -> config.ConfigMessage:
    return _parse(config.next_message(previous, data, None))


def _chain() -> dict[str, config.ConfigMessage]:
    m = {"118": _parse(V["m118_ascii"].encode())}
    current = m["118"]
    for seqno in (119, 120, 121, 122):
        current = _next(current, current.data)
        m[str(seqno)] = current
    data = copy.deepcopy(current.data)
    data.pop(b"int0")
    data.update({b"int1": 1, b"int2": 2, b"string1": b"hello"})
    m["123"] = _next(current, data)
    m["124"] = _next(m["123"], _updates_124(m["123"].data))
    a = copy.deepcopy(m["124"].data)
    dict_b = a[b"dictB"]
    assert isinstance(dict_b, dict)
    dict_b.pop(b"foo")
    m["125a"] = _next(m["124"], a)
    m["125b"] = _next(m["124"], {**m["124"].data, b"int1": 5})
    return m


def _updates_124(data: ConfigData) -> ConfigData:
    d = copy.deepcopy(data)
    d[b"dictA"] = {b"hello": 123, b"goodbye": [123, 456]}
    dict_b = d[b"dictB"]
    assert isinstance(dict_b, dict)
    dict_b.update({b"changed": 1, b"added": 9999, b"nested": {b"a": 1}})
    for key in (b"removed", b"removed2"):
        dict_b.pop(key)
    for key in (b"dictC", b"string1", b"great"):
        d.pop(key)
    good = d[b"good"]
    assert isinstance(good, list)
    d[b"good"] = [e for e in good if e != 456] + [b"Foo", 123]
    d.update({b"int1": 42, b"string2": b"hello", b"string3": b"omg"})
    return d


def _m120b() -> config.ConfigMessage:
    start = _parse(b"d1:#i118e1:&de1:<le1:=dee")
    m119 = _next(start, {})
    return _next(m119, {b"too old": b"won't see"})


def test_example_1_and_2_serialisation_chain() -> None:
    m = _chain()
    for seqno in ("119", "120", "121", "122", "123", "124", "125a", "125b"):
        assert m[seqno].hash == H[f"h{seqno}"], seqno
    assert m["123"].raw == _fill(V["m123_ascii"])
    assert m["124"].raw == _fill(V["m124_ascii"])


def test_example_3_simple_conflict_merges_to_the_upstream_bytes() -> None:
    m = _chain()
    expected = _fill(V["example3_merge_of_m125a_m125b"])
    orders = [
        [m["125a"], m["125b"]],
        [m["125b"], m["125a"]],
        [m["124"], m["125b"], m["125a"]],
        [m["125b"], m["125a"], m["124"]],
        [m["125b"], _m120b(), m["125a"]],
    ]
    for inputs in orders:
        merged = merge(inputs)
        assert isinstance(merged, Merged)
        assert merged.seqno == 126
        assert merged_message(merged, None, None) == expected


def test_example_4_complex_conflict_and_edit_after_merge() -> None:
    m = _chain()
    a = copy.deepcopy(m["123"].data)
    dict_b = a[b"dictB"]
    assert isinstance(dict_b, dict)
    dict_b.update({b"foo": 66, b"answer": 42})
    m124a = _next(m["123"], a)
    assert m124a.hash < H["h124"]
    merged_a = merge([m["125a"], m["125b"]])
    inputs_b = [m["125b"], m124a, m["125a"], m["123"], _m120b()]
    assert [x.hash for x in non_redundant(inputs_b)] == [m["125b"].hash, m124a.hash, H["h125a"]]
    merged_b = merge(inputs_b)
    assert isinstance(merged_a, Merged) and isinstance(merged_b, Merged)
    m126a = _parse(merged_message(merged_a, None, None))
    m126b = _parse(merged_message(merged_b, None, None))
    assert m126a.hash < m126b.hash
    m127_state = merge([m126a, m126b])
    assert isinstance(m127_state, Merged) and m127_state.seqno == 127
    data = copy.deepcopy(m127_state.data)
    goodbye = data[b"dictA"]
    assert isinstance(goodbye, dict)
    goodbye[b"goodbye"] = [123, 456, 789]
    raw = merged_message(m127_state, data, None)
    expected = _fill(
        V["example4"]["m127_template"], m124a=m124a.hash, m126a=m126a.hash, m126b=m126b.hash
    )
    assert raw == expected
    m127 = _parse(raw)
    again = merge([m127, m["125a"], m126b])
    assert isinstance(again, config.ConfigMessage) and again.hash == m127.hash


def test_signed_merge_is_identical_for_both_admins() -> None:
    import nacl.bindings as sodium

    public, secret = sodium.crypto_sign_seed_keypair(b"\x07" * 32)
    base = config.parse_message(
        config.next_message(config.empty_message(), {b"n": b"x"}, secret), public
    )
    one = config.parse_message(config.next_message(base, {b"n": b"renamed"}, secret), public)
    two = config.parse_message(
        config.next_message(base, {b"n": b"x", b"o": b"described"}, secret), public
    )
    left, right = merge([one, two]), merge([two, one])
    assert isinstance(left, Merged) and isinstance(right, Merged)
    bt = merged_message(left, None, secret)
    assert bt == merged_message(right, None, secret)
    merged = config.parse_message(bt, public)
    assert merged.data == {b"n": b"renamed", b"o": b"described"}
    assert merged.seqno == 3

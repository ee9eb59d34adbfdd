from __future__ import annotations

import hashlib
import zlib
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session import mnemonic
from bridge.session.errors import InvalidInput
from bridge.session.mnemonic import (
    InvalidPhraseError,
    MnemonicError,
    PhraseChecksumError,
    UnknownWordError,
    UnsupportedSeedLengthError,
    WrongWordCountError,
)
from tests.vectors import load

IDENTITY: dict[str, Any] = load("session-protocol")["identity"]
WORDS = resources.files("bridge.session").joinpath("data/english.txt").read_text().split()
N = len(WORDS)


def _with_checksum(words: list[str]) -> str:
    """Append the checksum word, computed here independently from §1.2."""
    crc = zlib.crc32("".join(word[:3] for word in words).encode())
    return " ".join([*words, words[crc % len(words)]])


def test_word_list_is_the_1626_word_english_list() -> None:
    assert len(WORDS) == 1626
    assert (WORDS[0], WORDS[-1]) == ("abbey", "zoom")
    assert len({word[:3] for word in WORDS}) == 1626


@pytest.mark.parametrize("case", IDENTITY["cases"], ids=lambda case: case["seed16"])
def test_vector_phrases(case: dict[str, str]) -> None:
    seed = bytes.fromhex(case["seed16"])
    assert mnemonic.encode(seed) == case["phrase"]
    assert mnemonic.decode(case["phrase"]) == seed


def test_vector_25_word_phrase() -> None:
    vector = IDENTITY["phrase32"]
    assert mnemonic.encode(bytes.fromhex(vector["bytes"])) == vector["phrase"]
    assert mnemonic.decode(vector["phrase"]) == bytes.fromhex(vector["bytes"])


def test_vector_word_indices_of_01020304() -> None:
    # §1.2: x = 0x04030201 (little-endian) = 67305985; w1 = x mod N, w2 = (x div N + w1) mod N,
    # w3 = (x div N div N + w2) mod N.
    x = int.from_bytes(bytes([1, 2, 3, 4]), "little")
    expected = [x % N, (x // N + x % N) % N]
    expected.append((x // N // N + expected[1]) % N)
    words = mnemonic.encode(bytes([1, 2, 3, 4]) * 4).split()
    assert [WORDS.index(word) for word in words[:3]] == expected == [967, 84, 109]
    # libsession's tests/test_mnemonics.cpp has a comment claiming 1443 here (its arithmetic
    # is wrong: 67305985 mod 1626 = 967); the vector file now carries the corrected value.
    assert IDENTITY["word_indices_of_bytes_01020304"] == expected


# libsession tests/test_mnemonics.cpp: SHA-512("libsession-util mnemonic test vector") encoded
# without checksum words. Pins the order of the whole list, not just a few words.
SHA512_PHRASE = (
    "threaten efficient wives skirting repent ashtray rural ammo reunion yoyo already tucks "
    "attire waxing uphill template ghetto anxiety utensils newt safety paper quote pebbles "
    "album gnaw puppy tidy foxes menu evenings spying wallets plotting fuselage geometry "
    "toilet cylinder swagger eels when tether cowl saga gossip vats bias federal"
)


def test_word_list_order_against_libsession_vector() -> None:
    seed = hashlib.sha512(b"libsession-util mnemonic test vector").digest()
    words = [*mnemonic.encode(seed[:32]).split()[:24], *mnemonic.encode(seed[32:]).split()[:24]]
    assert words == SHA512_PHRASE.split()


def test_case_insensitive_and_unique_prefixes() -> None:
    case = IDENTITY["cases"][0]
    shouted = case["phrase"].upper()
    prefixes = " ".join(word[:3] for word in case["phrase"].split())
    spaced = "\t " + "   ".join(case["phrase"].split()) + "\n"
    for phrase in (shouted, prefixes, spaced):
        assert mnemonic.decode(phrase) == bytes.fromhex(case["seed16"])


def test_only_the_first_three_letters_matter() -> None:
    # As in libsession and the apps: a mistyped tail past the prefix still decodes.
    typed = "amazing buffalo cakewalk entropy symbol tigger lambda mazurka nestling pythons "
    typed += "dustpan faxing faxidermy"
    assert mnemonic.decode(typed) == bytes.fromhex(IDENTITY["cases"][0]["seed16"])


def test_unknown_word_names_its_position_not_the_word() -> None:
    words = IDENTITY["cases"][0]["phrase"].split()
    words[4] = "qqqsecret"
    with pytest.raises(UnknownWordError) as caught:
        mnemonic.decode(" ".join(words))
    assert caught.value.position == 5
    assert "qqqsecret" not in str(caught.value)


def test_two_letter_word_is_unknown() -> None:
    words = IDENTITY["cases"][0]["phrase"].split()
    words[0] = "am"
    with pytest.raises(UnknownWordError):
        mnemonic.decode(" ".join(words))


def test_wrong_checksum_word() -> None:
    words = IDENTITY["cases"][0]["phrase"].split()
    words[-1] = "abbey" if words[-1] != "abbey" else "zoom"
    with pytest.raises(PhraseChecksumError):
        mnemonic.decode(" ".join(words))


def test_swapped_words_fail_the_checksum() -> None:
    words = IDENTITY["cases"][3]["phrase"].split()
    words[0], words[1] = words[1], words[0]
    with pytest.raises(PhraseChecksumError):
        mnemonic.decode(" ".join(words))


@pytest.mark.parametrize("count", [0, 1, 12, 14, 24, 26])
def test_wrong_word_count(count: int) -> None:
    with pytest.raises(WrongWordCountError):
        mnemonic.decode(" ".join(["abbey"] * count))


def test_triple_beyond_32_bits_is_rejected() -> None:
    # w1 = N-1 with both differences N-1 gives x = N^3 - 1 > 2^32 - 1.
    triple = [WORDS[N - 1], WORDS[N - 2], WORDS[N - 3]]
    with pytest.raises(InvalidPhraseError):
        mnemonic.decode(_with_checksum(triple * 4))


@pytest.mark.parametrize("length", [0, 4, 15, 17, 24, 31, 33, 64])
def test_encode_refuses_other_lengths(length: int) -> None:
    with pytest.raises(UnsupportedSeedLengthError):
        mnemonic.encode(bytes(length))


def test_errors_are_typed_invalid_input() -> None:
    for error in (UnknownWordError, PhraseChecksumError, WrongWordCountError, InvalidPhraseError):
        assert issubclass(error, MnemonicError)
    assert issubclass(MnemonicError, InvalidInput)
    with pytest.raises(MnemonicError):
        mnemonic.decode(b"abbey" * 13)  # type: ignore[arg-type]


def test_new_seed_is_16_fresh_bytes() -> None:
    seeds = {mnemonic.new_seed() for _ in range(8)}
    assert len(seeds) == 8
    assert all(len(seed) == 16 for seed in seeds)


@given(st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=32, max_size=32)))
def test_encode_decode_round_trip(seed: bytes) -> None:
    phrase = mnemonic.encode(seed)
    assert len(phrase.split()) == (13 if len(seed) == 16 else 25)
    assert mnemonic.decode(phrase) == seed
    assert mnemonic.decode(phrase.upper()) == seed


@given(st.text(max_size=200))
def test_random_text_gives_a_typed_error(text: str) -> None:
    try:
        seed = mnemonic.decode(text)
    except MnemonicError:
        return
    assert len(seed) in (16, 32)


@given(st.lists(st.sampled_from(WORDS), min_size=13, max_size=13))
def test_random_word_sequences_decode_or_fail_typed(words: list[str]) -> None:
    try:
        seed = mnemonic.decode(" ".join(words))
    except (PhraseChecksumError, InvalidPhraseError):
        return
    assert mnemonic.decode(mnemonic.encode(seed)) == seed


@given(st.binary(min_size=16, max_size=16), st.integers(min_value=0, max_value=12))
def test_truncated_phrases_are_rejected(seed: bytes, keep: int) -> None:
    words = mnemonic.encode(seed).split()[:keep]
    with pytest.raises(WrongWordCountError):
        mnemonic.decode(" ".join(words))


def test_looks_like_phrase() -> None:
    phrase = mnemonic.encode(bytes(range(16)))
    words = phrase.split()
    mistyped = " ".join([*words[:-1], words[0] if words[0] != words[-1] else words[1]])
    assert mnemonic.looks_like_phrase(phrase, checksum=True)
    assert mnemonic.looks_like_phrase(phrase.upper(), checksum=True)
    assert mnemonic.looks_like_phrase(mistyped, checksum=False)
    assert not mnemonic.looks_like_phrase(mistyped, checksum=True)
    assert not mnemonic.looks_like_phrase(" ".join(words[:12]), checksum=False)
    prose = "we will meet at the old park and then walk home after lunch"
    assert len(prose.split()) == 13
    assert not mnemonic.looks_like_phrase(prose, checksum=True)

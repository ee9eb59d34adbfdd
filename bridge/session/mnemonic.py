"""Session recovery phrases ("recovery password"), docs/session-protocol.md §1.2.

The encoding is Electrum/Monero ``mn_encode`` over the 1626-word English list: every 4 bytes
(read little-endian) become three words, and a checksum word chosen by CRC-32 of the words'
3-letter prefixes is appended. A 16-byte seed gives 13 words (what the apps generate), a 32-byte
seed 25 words.
"""

from __future__ import annotations

import secrets
import unicodedata
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final

from bridge.session.errors import InvalidInput

__all__ = [
    "SEED_LENGTHS",
    "InvalidPhraseError",
    "MnemonicError",
    "PhraseChecksumError",
    "UnknownWordError",
    "UnsupportedSeedLengthError",
    "WrongWordCountError",
    "decode",
    "encode",
    "is_phrase_word",
    "new_seed",
]

# 16 bytes: the seed of every app-generated account; 32 bytes: a full Ed25519 seed.
SEED_LENGTHS: Final = (16, 32)
PREFIX_LENGTH: Final = 3  # unique prefix length of the English list (§1.2)
_WORD_COUNTS: Final = {length // 4 * 3 + 1: length for length in SEED_LENGTHS}  # 13, 25


class MnemonicError(InvalidInput):
    """A recovery phrase (or a seed to encode) is not acceptable."""


class UnknownWordError(MnemonicError):
    """A word of the phrase is not in the word list (by its 3-letter prefix)."""

    def __init__(self, position: int) -> None:
        # The word itself is deliberately not kept: phrases are secrets and errors get logged.
        super().__init__(f"word {position} of the recovery phrase is not in the word list")
        self.position = position


class PhraseChecksumError(MnemonicError):
    """The last (checksum) word does not match the other words."""


class WrongWordCountError(MnemonicError):
    """The phrase does not have 13 or 25 words."""


class InvalidPhraseError(MnemonicError):
    """A group of three words does not encode a 32-bit value."""


class UnsupportedSeedLengthError(MnemonicError):
    """Only 16- and 32-byte seeds have a recovery phrase."""


@dataclass(frozen=True, slots=True)
class _WordList:
    words: tuple[str, ...]
    index_by_prefix: MappingProxyType[str, int]


@cache
def _word_list() -> _WordList:
    """Load the packaged English list once (``data/english.txt``, one word per line)."""
    text = resources.files("bridge.session").joinpath("data/english.txt").read_text("utf-8")
    words = tuple(text.split())
    index = {word[:PREFIX_LENGTH]: i for i, word in enumerate(words)}
    return _WordList(words, MappingProxyType(index))


def _checksum_index(words: list[str]) -> int:
    """Index of the checksum word: CRC-32 of the concatenated prefixes mod the word count."""
    prefixes = "".join(word[:PREFIX_LENGTH] for word in words)
    return zlib.crc32(prefixes.encode("utf-8")) % len(words)


def encode(seed: bytes) -> str:
    """Encode a 16- or 32-byte seed as a 13- or 25-word phrase (lowercase, single spaces)."""
    if not isinstance(seed, bytes) or len(seed) not in SEED_LENGTHS:
        raise UnsupportedSeedLengthError("a recovery phrase encodes 16 or 32 bytes")
    words = _word_list().words
    n = len(words)
    out: list[str] = []
    for offset in range(0, len(seed), 4):
        x = int.from_bytes(seed[offset : offset + 4], "little")
        w1 = x % n
        w2 = (x // n + w1) % n
        w3 = (x // n // n + w2) % n
        out += (words[w1], words[w2], words[w3])
    out.append(out[_checksum_index(out)])
    return " ".join(out)


def _word_indices(tokens: list[str]) -> list[int]:
    """Map every word to its list index by its 3-letter prefix, as the Session apps do."""
    index_by_prefix = _word_list().index_by_prefix
    indices: list[int] = []
    for position, token in enumerate(tokens, start=1):
        index = index_by_prefix.get(token[:PREFIX_LENGTH]) if len(token) >= 3 else None
        if index is None:
            raise UnknownWordError(position)
        indices.append(index)
    return indices


def is_phrase_word(token: str) -> bool:
    """Whether ``token`` (lowercase letters) can be a word of a phrase: by its 3-letter prefix,
    as :func:`decode` reads words."""
    return len(token) >= PREFIX_LENGTH and token[:PREFIX_LENGTH] in _word_list().index_by_prefix


def looks_like_phrase(text: str, *, checksum: bool) -> bool:
    """Whether ``text`` is 13 or 25 words that are all in the word list: a recovery phrase,
    or (``checksum=False``) one close enough, e.g. mistyped, that it must be kept secret.
    With ``checksum=True`` the last word must match too, which ordinary prose almost never
    does."""
    tokens = unicodedata.normalize("NFC", text).lower().split()
    if len(tokens) not in _WORD_COUNTS:
        return False
    index_by_prefix = _word_list().index_by_prefix
    if not all(len(t) >= 3 and t[:PREFIX_LENGTH] in index_by_prefix for t in tokens):
        return False
    if not checksum:
        return True
    try:
        decode(text)
    except MnemonicError:
        return False
    return True


def _decode_triple(w1: int, w2: int, w3: int, n: int) -> bytes:
    x = w1 + n * ((n - w1 + w2) % n) + n * n * ((n - w2 + w3) % n)
    # x mod n == w1 holds by construction; the only invalid triples are those past 2^32 - 1.
    if x > 0xFFFFFFFF:
        raise InvalidPhraseError("the recovery phrase contains an impossible word combination")
    return x.to_bytes(4, "little")


def decode(phrase: str) -> bytes:
    """Decode a 13- or 25-word phrase to its 16- or 32-byte seed.

    Words are separated by whitespace and matched case-insensitively (after NFC normalisation)
    by their first three letters, so unique prefixes such as ``"amaz"`` or ``"AMA"`` work.
    """
    if not isinstance(phrase, str):
        raise MnemonicError("a recovery phrase must be text")
    tokens = unicodedata.normalize("NFC", phrase).lower().split()
    if len(tokens) not in _WORD_COUNTS:
        raise WrongWordCountError(f"a recovery phrase has 13 or 25 words, not {len(tokens)}")
    indices = _word_indices(tokens)
    words = _word_list().words
    data_words = [words[i] for i in indices[:-1]]
    expected = data_words[_checksum_index(data_words)]
    if expected[:PREFIX_LENGTH] != words[indices[-1]][:PREFIX_LENGTH]:
        raise PhraseChecksumError("the last word of the recovery phrase does not match")
    n = len(words)
    triples = zip(indices[0:-1:3], indices[1:-1:3], indices[2:-1:3], strict=True)
    return b"".join(_decode_triple(w1, w2, w3, n) for w1, w2, w3 in triples)


def new_seed() -> bytes:
    """Return 16 fresh random bytes: the seed of a new account, as the Session apps make it."""
    return secrets.token_bytes(16)

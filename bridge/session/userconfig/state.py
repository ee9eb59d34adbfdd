"""The writer's state of one user config, and what reading and editing do to it (pure).

docs/user-configs.md §3: a config is *clean* (what the swarm holds), or *dirty* (a new message,
merged or edited, waiting to be pushed). Storage hashes that the current message superseded
are *obsolete* and deleted with the next push, as the apps do (docs/groups-v2.md §1.13).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from bridge.session.errors import SessionError
from bridge.session.groups import config, config_crypto, multipart
from bridge.session.groups.bencode import BValue
from bridge.session.groups.config import ConfigMessage, Rejected, empty_message, parse_message
from bridge.session.groups.config_data import normalize
from bridge.session.groups.user_config_wrap import unwrap_user_config, wrap_user_config
from bridge.session.onetoone import MessageKeys
from bridge.session.userconfig.merge import merge
from bridge.session.userconfig.views import DOMAINS


@dataclass(frozen=True)
class UserConfigState:
    """One namespace's config as this writer holds it."""

    namespace: int
    message: ConfigMessage = field(default_factory=empty_message)
    hashes: frozenset[str] = frozenset()  # storage hashes carrying ``message``
    obsolete: frozenset[str] = frozenset()  # superseded storage hashes, deleted on push
    dirty: bool = False

    @property
    def data(self) -> dict[bytes, BValue]:
        return self.message.data

    def dumps(self) -> str:
        """JSON for the bridge's key-value store."""
        return json.dumps(
            {
                "raw": self.message.raw.hex(),
                "hashes": sorted(self.hashes),
                "obsolete": sorted(self.obsolete),
                "dirty": self.dirty,
            }
        )

    @classmethod
    def loads(cls, namespace: int, text: str | None) -> UserConfigState:
        """The state :meth:`dumps` wrote; an empty config for ``None`` or unreadable text."""
        if not text:
            return cls(namespace)
        try:
            value = json.loads(text)
            message = parse_message(bytes.fromhex(value["raw"]), None)
            return cls(
                namespace,
                message,
                frozenset(value["hashes"]),
                frozenset(value["obsolete"]),
                bool(value["dirty"]),
            )
        except (ValueError, KeyError, TypeError, SessionError):
            return cls(namespace)


@dataclass(frozen=True)
class Absorbed:
    state: UserConfigState
    changed: bool
    rejected: tuple[Rejected, ...]


def absorb(
    state: UserConfigState,
    blobs: Iterable[tuple[str, bytes]],
    keys: MessageKeys,
    assembler: multipart.Assembler,
    now_ms: int,
) -> Absorbed:
    """Read retrieved ``(storage_hash, data)`` of ``state``'s namespace and merge them with
    the current message as libsession's writer does (docs/groups-v2.md §1.13)."""
    found: dict[bytes, tuple[ConfigMessage, set[str]]] = {}
    rejected: list[Rejected] = []
    for storage_hash, data in blobs:
        try:
            opened = _open(storage_hash, data, keys, state.namespace, assembler, now_ms)
        except SessionError as e:
            rejected.append(Rejected(storage_hash, str(e)))
            continue
        if opened is not None:
            message, hashes = opened
            found.setdefault(message.hash, (message, set()))[1].update(hashes)
    if not found:
        return Absorbed(state, False, tuple(rejected))
    current = state.message
    if current.hash in found:  # our own message came back: learn where it is stored
        echoed = found.pop(current.hash)[1]
        state = replace(state, hashes=state.hashes | echoed)
    if not found:
        return Absorbed(state, False, tuple(rejected))
    outcome = merge([current, *(m for m, _ in found.values())])
    incoming = set().union(*(h for _, h in found.values()))
    if outcome.merged is not None:
        merged = parse_message(outcome.merged, None)
        obsolete = state.obsolete | state.hashes | incoming
        new = UserConfigState(state.namespace, merged, frozenset(), frozenset(obsolete), True)
        return Absorbed(new, True, tuple(rejected))
    adopted = outcome.adopted
    if adopted.hash == current.hash:
        return Absorbed(state, False, tuple(rejected))
    mine = frozenset(found[adopted.hash][1])
    obsolete = (state.obsolete | state.hashes | incoming) - mine
    new = UserConfigState(state.namespace, adopted, mine, frozenset(obsolete), False)
    return Absorbed(new, True, tuple(rejected))


def _open(
    storage_hash: str,
    data: bytes,
    keys: MessageKeys,
    namespace: int,
    assembler: multipart.Assembler,
    now_ms: int,
) -> tuple[ConfigMessage, frozenset[str]] | None:
    blob = unwrap_or_raw(keys, data)
    plaintext = config_crypto.decrypt(blob, _seed(keys), DOMAINS[namespace])
    body = multipart.classify(plaintext)
    if isinstance(body, multipart.WholeBody):
        return parse_message(body.bt, None), frozenset({storage_hash})
    added = assembler.add(storage_hash, body, now_ms)
    if isinstance(added, multipart.Completed):
        return parse_message(added.bt, None), added.storage_hashes
    return None


def edit(state: UserConfigState, data: Mapping[bytes, BValue]) -> UserConfigState:
    """The state after a local change to ``data``: a new message (seqno + 1), dirty, and its
    predecessor's storage hashes obsolete. No change gives ``state`` back."""
    if normalize(data) == state.data:
        return state
    message = parse_message(config.next_message(state.message, data, None), None)
    obsolete = state.obsolete | state.hashes
    return UserConfigState(state.namespace, message, frozenset(), frozenset(obsolete), True)


def seal(state: UserConfigState, keys: MessageKeys) -> list[bytes]:
    """The stored form of the dirty message: encrypted with the account's seed, then
    protobuf-wrapped (a multipart message's parts are not wrapped, §1.10/§1.11)."""
    parts = config.seal_message(state.message.raw, _seed(keys), DOMAINS[state.namespace])
    if len(parts) > 1:
        return parts
    return [wrap_user_config(keys, state.namespace, state.message.seqno, parts[0])]


def pushed(state: UserConfigState, storage_hashes: Iterable[str]) -> UserConfigState:
    """The state once the dirty message is stored under ``storage_hashes``; the obsolete
    hashes are kept until :func:`deleted` says they are gone."""
    return replace(state, hashes=frozenset(storage_hashes), dirty=False)


def deleted(state: UserConfigState, storage_hashes: Iterable[str]) -> UserConfigState:
    """Forget obsolete hashes that were deleted (or are gone)."""
    return replace(state, obsolete=state.obsolete - frozenset(storage_hashes))


def _seed(keys: MessageKeys) -> bytes:
    """The 32-byte Ed25519 seed: the key base of every user config (docs/groups-v2.md §1.8)."""
    return bytes(keys.ed25519_secret_key[:32])


def unwrap_or_raw(keys: MessageKeys, data: bytes) -> bytes:
    """The encrypted config inside the protobuf wrapper, or ``data`` itself when it is not
    wrapped (readers accept the bare form, docs/groups-v2.md §1.11)."""
    try:
        return unwrap_user_config(keys, data)
    except SessionError:
        return bytes(data)

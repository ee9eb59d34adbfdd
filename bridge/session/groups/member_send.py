"""Posting to a group swarm as a member or admin (docs/groups-v2.md §4.1, §5.3, §6.1).

A message is encrypted with the group's current key (:func:`encrypt_group_message`) and
stored in namespace 11 of the 03 account, signed by the member's subaccount (or the group key
for admins) through the group's :data:`~bridge.session.groups.poller.RequestSigner`.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from typing import Any

from bridge.ids import GroupID
from bridge.session.groups.group_messages import encrypt_group_message
from bridge.session.groups.group_state import NS_MESSAGES, GroupState
from bridge.session.groups.outgoing import PreparedGroupMessage
from bridge.session.groups.poller import RequestSigner
from bridge.session.groups.subaccount import (
    Flags,
    MalformedAuthData,
    admin_request_params,
    member_request_params,
    parse_member_auth_data,
)
from bridge.session.keys import Identity
from bridge.session.messages import Message
from bridge.session.snode import auth, calls
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call, parse_store
from bridge.session.snode.rpc import SnodeClient

__all__ = [
    "GroupSent",
    "may_extend",
    "post_group_message",
    "prepare_group_message",
    "request_signer",
    "store_prepared",
]


@dataclass(frozen=True)
class GroupSent:
    """A posted group message: its sent timestamp (its identity, §7.11) and storage hash."""

    timestamp: int
    hash: str


def request_signer(
    identity: Identity, group_id: GroupID, *, auth_data: bytes = b"", seed: bytes | None = None
) -> RequestSigner:
    """Sign group-swarm requests with the group key when ``seed`` is known (admin), else as
    the subaccount of ``auth_data`` (§5.3, §5.4)."""
    if seed is not None:
        return functools.partial(admin_request_params, seed)
    return functools.partial(member_request_params, identity, auth_data, group_id)


def may_extend(*, auth_data: bytes = b"", seed: bytes | None = None) -> bool:
    """Whether we may extend the group's expiries: admin, or a token with WRITE (§5.4 2)."""
    if seed is not None:
        return True
    try:
        return Flags.WRITE in parse_member_auth_data(auth_data).flags
    except MalformedAuthData:
        return False


async def post_group_message(
    snode: SnodeClient,
    state: GroupState,
    sign: RequestSigner,
    message: Message,
    timestamp: int,
    *,
    ttl_ms: int = calls.DEFAULT_TTL_MS,
) -> GroupSent:
    """Encrypt ``message`` with the newest key and store it in ns 11 (§4.1 step 7).

    Raises :class:`~bridge.session.groups.keyring.NoGroupKey` before the first keys message,
    and the snode errors (401 ``Unauthorized`` once our subaccount is revoked).
    """
    prepared = prepare_group_message(state, message, timestamp, ttl_ms=ttl_ms)
    return await store_prepared(snode, sign, prepared)


def prepare_group_message(
    state: GroupState, message: Message, timestamp: int, *, ttl_ms: int = calls.DEFAULT_TTL_MS
) -> PreparedGroupMessage:
    """Encrypt ``message`` with the newest key, for :func:`store_prepared` (now or on a
    retry: the same bytes are the same stored message, :mod:`bridge.session.groups.outgoing`)."""
    data = encrypt_group_message(
        state.identity, state.group_pk, state.keyring.encryption_key(), message, timestamp
    )
    return PreparedGroupMessage(state.group_id.value, timestamp, ttl_ms, data)


async def store_prepared(
    snode: SnodeClient, sign: RequestSigner, prepared: PreparedGroupMessage
) -> GroupSent:
    """Store an encrypted group message in ns 11; storing it again stores nothing new."""
    group, timestamp, ttl_ms = prepared.group, prepared.timestamp, prepared.ttl_ms
    encoded = base64.b64encode(prepared.data).decode()

    def params(_node: ServiceNode, now: int) -> dict[str, Any]:
        return sign("store", NS_MESSAGES, now, timestamp=timestamp, ttl=ttl_ms, data=encoded)

    node, body = await snode.call(group, Call("store", params))
    stored = parse_store(node, auth.message_hash(group, NS_MESSAGES, prepared.data), body)
    return GroupSent(timestamp, stored.hash)

"""Cross-signing of the bridge bot's device, so clients do not warn about an unknown device
(README, Encryption).

At every start the homeserver is asked whether the bot's device is signed by the bot's
published self-signing key. If not (first start, or a new device after the crypto store was
lost), the bot makes new cross-signing keys, publishes them and signs its device with them.
Publishing a first set needs no password (MSC3967); replacing a set needs none for an
appservice's own request either, so a replacement is made with the appservice token acting
for the bot (the bot has no password to give). The private keys are not kept: the device
they signed stays the bot's for good (its id is in the crypto store), and a new device gets a
new set the same way.
"""

from __future__ import annotations

import logging

from mautrix.client import Client
from mautrix.crypto import OlmMachine
from mautrix.crypto.cross_signing_key import CrossSigningSeeds
from mautrix.errors import MatrixRequestError
from mautrix.types import KeyID, UserID

log = logging.getLogger("bridge.matrix.e2ee")


async def device_is_cross_signed(client: Client) -> bool:
    """Whether the homeserver has the bot's device signed by the bot's self-signing key."""
    mxid = UserID(str(client.mxid))
    keys = await client.query_keys({mxid: [client.device_id]})
    self_signing = keys.self_signing_keys.get(mxid)
    device = keys.device_keys.get(mxid, {}).get(client.device_id)
    if self_signing is None or device is None or mxid not in keys.master_keys:
        return False
    signatures = (device.signatures or {}).get(mxid, {})
    return any(KeyID.ed25519(key) in signatures for key in self_signing.keys.values())


async def cross_sign_device(machine: OlmMachine, as_token: str) -> None:
    """Make the bot's device cross-signed if it is not (see the module docstring)."""
    client = machine.client
    if await device_is_cross_signed(client):
        log.info("The bridge bot's device %s is cross-signed", client.device_id)
        return
    replacing = bool((await client.query_keys([client.mxid])).master_keys)
    seeds = CrossSigningSeeds.generate()
    device_token = client.api.token
    if replacing:
        # As the appservice acting for the bot (``user_id``): Synapse asks it no UIA.
        client.api.token, client.api.as_user_id = as_token, client.mxid
    try:
        await machine._publish_cross_signing_keys(seeds.to_keys())
    finally:
        client.api.token, client.api.as_user_id = device_token, None
    machine._import_cross_signing_keys(seeds)
    await machine.sign_own_device(machine.own_identity)
    log.info(
        "The bridge bot's device %s is now cross-signed (%s keys)",
        client.device_id,
        "replaced" if replacing else "new",
    )


async def try_cross_sign(machine: OlmMachine, as_token: str) -> bool:
    """:func:`cross_sign_device`; a refusal of the homeserver is logged, not fatal (the bridge
    works with an unsigned device; clients then show a warning)."""
    try:
        await cross_sign_device(machine, as_token)
    except MatrixRequestError as e:
        log.warning(
            "The bridge bot's device could not be cross-signed (HTTP %s, %s): clients will "
            "show it as not verified by its owner",
            e.http_status,
            e.errcode,
        )
        return False
    return True

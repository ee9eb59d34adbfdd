"""The bridge bot's device is cross-signed (README, Encryption): against real Synapse, its keys
as any Matrix client reads them, the signatures checked with Olm."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import olm  # type: ignore[import-untyped]
from mautrix.crypto.cross_signing_key import CrossSigningSeeds

from bridge.app import BridgeApp
from tests.integration.conftest import DmEnv, require_env
from tests.integration.test_encryption import EncryptedUser, alice, e2be_config, e2be_env

__all__ = ["alice", "e2be_config", "e2be_env"]  # the fixtures this module uses


def canonical(obj: dict[str, Any]) -> str:
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def signed_by(obj: dict[str, Any], signer: str, key: str) -> bool:
    """Whether ``obj`` carries a valid Ed25519 signature of ``signer``'s ``key``."""
    signature = obj.get("signatures", {}).get(signer, {}).get(f"ed25519:{key}")
    if signature is None:
        return False
    try:
        olm.ed25519_verify(key, canonical(obj), signature)
    except olm.OlmVerifyError:
        return False
    return True


def only_key(obj: dict[str, Any]) -> str:
    (key,) = obj["keys"].values()
    return str(key)


async def bot_keys(user: EncryptedUser, bot: str) -> dict[str, Any]:
    url = f"{require_env('SMB_TEST_SYNAPSE_URL')}/_matrix/client/v3/keys/query"
    headers = {"Authorization": f"Bearer {user.token}"}
    body = {"device_keys": {bot: []}}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        data: dict[str, Any] = await r.json()
    return data


def check_signed(keys: dict[str, Any], bot: str, device_id: str) -> str:
    """The bot's master key, after checking it signed the self-signing key that signed the
    device."""
    master = only_key(keys["master_keys"][bot])
    self_signing = keys["self_signing_keys"][bot]
    assert signed_by(self_signing, bot, master), "self-signing key not signed by the master key"
    device = keys["device_keys"][bot][device_id]
    assert signed_by(device, bot, only_key(self_signing)), "device not cross-signed"
    return master


async def restart(env: DmEnv) -> None:
    config = env.app.config
    await env.app.stop()
    env.app = BridgeApp(config)
    await env.app.start()


async def test_the_bot_device_is_cross_signed_and_stays_so(
    e2be_env: DmEnv, alice: EncryptedUser
) -> None:
    env = e2be_env
    bot = env.app.config.bot_mxid
    assert env.app._encryption is not None
    device_id = env.app._encryption.crypto.device_id
    master = check_signed(await bot_keys(alice, bot), bot, device_id)

    # A restart keeps the keys and the signature: nothing is replaced.
    await restart(env)
    assert check_signed(await bot_keys(alice, bot), bot, device_id) == master

    # Someone replaced the bot's cross-signing keys (the device is no longer signed by the
    # current ones): at the next start the bridge replaces them and signs its device again.
    seeds = CrossSigningSeeds.generate().to_keys()
    public = seeds.public_keys

    def key(usage: str, public_key: str, signer: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "user_id": bot,
            "usage": [usage],
            "keys": {f"ed25519:{public_key}": public_key},
        }
        if signer is not None:
            obj["signatures"] = {
                bot: {f"ed25519:{public.master_key}": signer.sign(canonical(obj))}
            }
        return obj

    body = {
        "master_key": key("master", public.master_key, None),
        "self_signing_key": key("self_signing", public.self_signing_key, seeds.master_key),
        "user_signing_key": key("user_signing", public.user_signing_key, seeds.master_key),
    }
    url = f"{require_env('SMB_TEST_SYNAPSE_URL')}/_matrix/client/v3/keys/device_signing/upload"
    headers = {"Authorization": f"Bearer {env.app.config.appservice.as_token}"}
    params = {"user_id": bot}  # the appservice acting for its bot
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers=headers, params=params) as r,
    ):
        assert r.status == 200, await r.text()
    replaced = await bot_keys(alice, bot)
    assert only_key(replaced["master_keys"][bot]) == public.master_key
    assert not signed_by(replaced["device_keys"][bot][device_id], bot, public.self_signing_key), (
        "the device should not be signed by keys the bot never had"
    )

    await restart(env)
    again = check_signed(await bot_keys(alice, bot), bot, device_id)
    assert again not in (master, public.master_key)

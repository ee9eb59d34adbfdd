"""End-to-bridge encryption overhead, against the real Synapse and PostgreSQL.

An in-process bridge with ``encryption.allow`` (its database a fresh PostgreSQL one) and a
matrix-nio client with Olm share two rooms the bot created, one plain and one encrypted:

* send: N messages sent by the bot's intent into each room (in the encrypted one each is
  Megolm-encrypted by the bot's device first; the first also shares the session);
* receive: N messages sent by the nio client into each room, read back as the homeserver
  stored them; per message, the bridge's decrypt (Megolm plus the replay check in the store)
  next to the parse every event gets (``bridge.core.portal.router.parse_event``).

Prints milliseconds per message and the ratio to the unencrypted path measured in the same run.
Run: ``SMB_BENCH=bench_e2be bash scripts/bench.sh [-n N]``. Never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mautrix.types import EventType, PaginationDirection, RoomID, TextMessageEventContent, UserID
from mautrix.types import MessageType as MT

from bridge.app import BridgeApp
from bridge.config import load_config
from bridge.core.portal.router import parse_event
from tests.integration.conftest import create_postgres_database, require_env, wait_for
from tests.integration.test_encryption import ENCRYPTION, EncryptedUser, register


async def timed_sends(app: BridgeApp, room: str, n: int, tag: str) -> list[float]:
    bot = app.appservice.intent
    times = []
    for i in range(n):
        content = TextMessageEventContent(msgtype=MT.TEXT, body=f"{tag} {i}")
        start = time.perf_counter()
        await bot.send_message_event(RoomID(room), EventType.ROOM_MESSAGE, content)
        times.append(time.perf_counter() - start)
    return times


async def stored_events(app: BridgeApp, room: str, n: int) -> list[dict[str, Any]]:
    resp = await app.appservice.intent.get_messages(
        RoomID(room), direction=PaginationDirection.BACKWARD, limit=n * 3
    )
    raw = [e.serialize() for e in resp.events]
    return [e for e in raw if e["sender"] != app.config.bot_mxid][:n][::-1]


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def main(n: int) -> None:
    config = load_config(Path(require_env("SMB_TEST_CONFIG")))
    config.database.url = await create_postgres_database(require_env("SMB_TEST_POSTGRES_URL"))
    config.encryption.allow = True
    app = BridgeApp(config)
    await app.start()
    store = Path(tempfile.mkdtemp(prefix="bench-e2be-"))
    user = EncryptedUser(*(await register("bench")), store / "olm")
    try:
        await user.sync()
        bot = app.appservice.intent
        plain = await bot.create_room(invitees=[UserID(user.user_id)])
        encrypted = await bot.create_room(
            invitees=[UserID(user.user_id)], initial_state=[ENCRYPTION]
        )
        for room in (plain, encrypted):
            await user.client.join(room)
        # Sends: the bot's intent, plain vs encrypted (the first also shares the session).
        send_plain = await timed_sends(app, plain, n, "plain")
        send_enc = await timed_sends(app, encrypted, n, "enc")
        # Receives: what the nio client sends, decrypted by the bridge vs only parsed.
        for room, tag in ((plain, "from-plain"), (encrypted, "from-enc")):
            for i in range(n):
                await user.send(room, f"{tag} {i}")
        crypto = app._encryption.crypto if app._encryption is not None else None
        assert crypto is not None
        enc_events = await wait_for(
            lambda: _n_events(app, encrypted, n), "the encrypted events", 60
        )
        plain_events = await stored_events(app, plain, n)
        parse_times, decrypt_times = [], []
        for raw in plain_events:
            start = time.perf_counter()
            parse_event(raw)
            parse_times.append(time.perf_counter() - start)
        for raw in enc_events:
            start = time.perf_counter()
            parse_event(await crypto.decrypt(raw))
            decrypt_times.append(time.perf_counter() - start)
        print(f"messages per path: {n}")
        print(f"send, unencrypted:        {ms(send_plain):8.2f} ms/message (median)")
        first, rest = send_enc[0] * 1000, ms(send_enc[1:]) if n > 1 else float("nan")
        print(f"send, encrypted:          {rest:8.2f} ms/message (median; first {first:.1f} ms)")
        print(f"  ratio to unencrypted:   {rest / ms(send_plain):8.2f}")
        print(f"receive, parse only:      {ms(parse_times):8.3f} ms/message (median)")
        print(f"receive, decrypt + parse: {ms(decrypt_times):8.3f} ms/message (median)")
        print(f"  overhead per message:   {ms(decrypt_times) - ms(parse_times):8.3f} ms")
    finally:
        await user.close()
        await app.stop()


async def _n_events(app: BridgeApp, room: str, n: int) -> list[dict[str, Any]] | None:
    events = await stored_events(app, room, n)
    return events if len(events) >= n else None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50)
    asyncio.run(main(parser.parse_args().n))

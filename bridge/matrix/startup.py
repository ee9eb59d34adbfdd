"""Startup self-test against the homeserver: reachable, the bot's token works, and the
homeserver can reach us (appservice ping, MSC2659). Each failure is its own exception with a
message an operator can act on."""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import ClientError
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError, MForbidden, MUnknownToken

from bridge.backoff import Backoff

log = logging.getLogger("bridge.matrix.startup")

#: Waits between ``/versions`` attempts while the homeserver does not answer.
VERSIONS_BACKOFF = Backoff(0.5, 5.0)


class StartupError(Exception):
    """A self-test failed; the message says what to check."""


class HomeserverUnreachable(StartupError):
    pass


class BotAuthFailed(StartupError):
    pass


class PingFailed(StartupError):
    pass


async def wait_for_homeserver(intent: IntentAPI, address: str, timeout: float) -> None:
    """Ask ``/versions`` until the homeserver answers or ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            await intent.versions()
            return
        except MatrixRequestError:
            return  # it answered (perhaps refusing the unregistered bot): it is reachable
        except (TimeoutError, ClientError, MatrixConnectionError, OSError) as e:
            delay = VERSIONS_BACKOFF.delay(attempt)
            if loop.time() + delay > deadline:
                raise HomeserverUnreachable(
                    f"homeserver at {address} did not answer within {timeout:.0f} s ({e}); "
                    "check homeserver.address"
                ) from e
            log.info("Homeserver not reachable yet (%s), retrying in %.1f s", e, delay)
            await asyncio.sleep(delay)


async def check_bot(intent: IntentAPI) -> None:
    """``whoami`` as the bot, registering it first if the homeserver does not know it yet."""
    try:
        try:
            await intent.whoami()
        except MForbidden:
            await intent.ensure_registered()
            await intent.whoami()
    except MUnknownToken as e:
        raise BotAuthFailed(
            "the homeserver does not accept our as_token: add the registration file to "
            "app_service_config_files in homeserver.yaml and restart the homeserver"
        ) from e
    except MatrixRequestError as e:
        raise BotAuthFailed(f"whoami as the bot failed: {e.errcode}: {e.message}") from e


PING_ATTEMPTS = 3
PING_RETRY_DELAY = 1.0


async def ping_homeserver(
    intent: IntentAPI, appservice_id: str, our_address: str, *, attempts: int = PING_ATTEMPTS
) -> int | None:
    """Ask the homeserver to ping us back; returns the round trip in ms, or None if the
    homeserver does not implement the ping.

    A connection failure is tried again a few times: right after a restart Synapse may still
    hold a connection to the previous process and report it as failed (``AlreadyCancelled``).
    """
    for attempt in range(1, attempts + 1):
        try:
            duration: int = await intent.appservice_ping(appservice_id, txn_id=uuid.uuid4().hex)
        except MatrixRequestError as e:
            if e.http_status in (404, 405) or e.errcode == "M_UNRECOGNIZED":
                log.warning("Homeserver does not support the appservice ping; skipping that check")
                return None
            if attempt == attempts:
                raise PingFailed(
                    f"the homeserver cannot reach the bridge at {our_address} "
                    f"({e.errcode}: {e.message}); check appservice.address, hostname and port"
                ) from e
            log.info("Ping from the homeserver failed (%s), trying again", e.errcode)
            await asyncio.sleep(PING_RETRY_DELAY * attempt)
            continue
        log.info("Homeserver reached the bridge in %d ms", duration)
        return duration
    return None

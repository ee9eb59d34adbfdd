"""Session direct messages → the inbound handler, under the failure policy
(docs/architecture.md §4.7).

The Session client delivers each event of an account until its subscriber returns, and only
then moves its poll cursor (:mod:`bridge.session.client`). This subscriber:

* raises :class:`~bridge.session.subscribers.RetryLater` on a *transient* failure (the
  homeserver or the database away): the client delivers the event again after a capped
  backoff, for as long as it takes, and the account's later messages wait behind it, in order;
* parks the event in the dead-letter table after a few tries of a *permanent* failure and
  returns, so the cursor moves on and the rest of the conversation is bridged.

A parked event keeps the raw message; ``retry`` rebuilds the event from it
(:meth:`~bridge.session.client.SessionClient.event_from_data`) and handles it again.
"""

from __future__ import annotations

import base64
import binascii
import logging

from bridge import metrics
from bridge.core.direct.accounts import Account, AccountHandler, SessionAccounts
from bridge.core.portal.deadletters import DeadLetters, RetryFailed, payload_of
from bridge.core.portal.failures import Transient, attempt_or_park
from bridge.db.records import DeadLetterPath, DeadLetterRecord
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent
from bridge.session.errors import SessionError
from bridge.session.subscribers import RetryLater

log = logging.getLogger("bridge.core.direct.delivery")


def describe(account: Account, event: DirectMessageEvent) -> str:
    kind = type(event.content).__name__
    return (
        f"Session {kind} {event.hash[:16]}… from {event.sender.value[:10]}… "
        f"to {account.session_id[:10]}…"
    )


class DirectDelivery:
    """The subscriber of every account's client (see the module docstring)."""

    def __init__(
        self, handle: AccountHandler, accounts: SessionAccounts, dead_letters: DeadLetters | None
    ) -> None:
        self._handle = handle
        self._accounts = accounts
        self._dead_letters = dead_letters
        if dead_letters is not None:
            dead_letters.register(DeadLetterPath.DIRECT, self.retry_parked)

    async def __call__(self, account: Account, client: SessionClient, event: ClientEvent) -> None:
        if not isinstance(event, DirectMessageEvent):
            await self._handle(account, client, event)  # a gap: a log line, nothing to park
            return
        what = describe(account, event)

        async def handle() -> None:
            await self._handle(account, client, event)

        async def park(error: BaseException, tries: int) -> None:
            await self._park(account, event, what, error, tries)

        try:
            await attempt_or_park(handle, what, park)
        except Transient as e:
            metrics.failed(metrics.TRANSIENT, "direct")
            raise RetryLater(str(e)) from e

    async def _park(
        self,
        account: Account,
        event: DirectMessageEvent,
        what: str,
        error: BaseException,
        tries: int,
    ) -> None:
        if self._dead_letters is None:
            log.error("Dropping %s: %s", what, error)
            return
        payload = {
            "account": account.session_id,
            "hash": event.hash,
            "expiry": event.expiry,
            "data": base64.b64encode(event.data).decode("ascii"),
        }
        await self._dead_letters.park(DeadLetterPath.DIRECT, what, payload, error, attempts=tries)

    async def retry_parked(self, record: DeadLetterRecord) -> None:
        """Handle a parked message again; raises if that fails (it then stays parked)."""
        payload = payload_of(record)
        found = self._accounts.get(str(payload.get("account")))
        if found is None:
            raise RetryFailed("the Session login it came to is not running")
        account, client = found
        try:
            data = base64.b64decode(str(payload["data"]), validate=True)
            event = client.event_from_data(data, str(payload["hash"]), int(payload["expiry"]))
        except (KeyError, ValueError, binascii.Error, SessionError) as e:
            raise RetryFailed(f"the parked message cannot be read again: {e}") from e
        await self._handle(account, client, event)

"""Handing one event to every subscriber of a client, the rule both Session clients follow
(:mod:`bridge.session.client`, :mod:`bridge.session.groups.member`):

* every subscriber gets the event; one that raises is logged with its traceback and does not
  keep the others from getting it;
* if one raised, all get the event again after a backoff (doubling from ``retry_delay``, at
  most :data:`MAX_RETRY_DELAY_S`);
* a subscriber that raises :class:`RetryLater` says "not now, but this will work" (the other
  side is unreachable): the event is delivered again, after the same capped backoff, **for as
  long as it takes**, and these rounds never count toward giving up (the failure policy of
  docs/architecture.md §4.7: a Synapse restart must not cost messages);
* after ``max_attempts`` rounds with any other failure the event is dropped with an error
  line, so one poison event cannot block the client forever (the bridge's subscribers park
  such events themselves and return, so this is the last resort of other subscribers);
* with ``wait_for_taker`` an event is held while no subscriber takes it (none subscribed, or
  every one declined it), instead of being passed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeAlias, TypeVar

from bridge.backoff import Backoff

log = logging.getLogger("bridge.session.subscribers")

__all__ = ["MAX_RETRY_DELAY_S", "Deliver", "RetryLater", "SubscriberList"]

E = TypeVar("E")

#: A subscriber: true once it has taken the event, false if it declined it (a closed stream).
Deliver: TypeAlias = Callable[[E], Awaitable[bool]]

#: The longest wait before an event a subscriber failed on is delivered again.
MAX_RETRY_DELAY_S = 30.0


class RetryLater(Exception):
    """Raised by a subscriber: the event could not be handled *now* (a server it needs is
    unreachable); deliver it again later, without ever giving up on it."""


class SubscriberList(Generic[E]):
    """A client's subscribers and the delivery rule of the module docstring."""

    def __init__(
        self,
        owner: str,
        describe: Callable[[E], str],
        *,
        max_attempts: int = 5,
        retry_delay: float = 1.0,
        wait_for_taker: bool = False,
    ) -> None:
        self._owner = owner
        self._describe = describe
        self._max_attempts = max(1, max_attempts)
        self._backoff = Backoff(retry_delay, MAX_RETRY_DELAY_S)
        self._wait_for_taker = wait_for_taker
        self._delivers: list[Deliver[E]] = []
        self._present = asyncio.Event()

    def add(self, deliver: Deliver[E]) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._delivers.append(deliver)
        self._present.set()
        return lambda: self.remove(deliver)

    def remove(self, deliver: Deliver[E]) -> None:
        """Remove a subscriber (nothing if it is not there)."""
        with contextlib.suppress(ValueError):
            self._delivers.remove(deliver)
        if not self._delivers:
            self._present.clear()

    async def deliver(self, event: E) -> None:
        """Deliver ``event`` to every subscriber; return once it may be acknowledged."""
        failures = later = 0  # rounds with a failure; rounds that only asked to retry later
        while True:
            if self._wait_for_taker:
                await self._present.wait()
            taken, failed, retry_later = await self._round(event)
            if not failed and not retry_later and (taken or not self._wait_for_taker):
                if later:
                    log.info(
                        "%s: %s went through after waiting", self._owner, self._describe(event)
                    )
                return
            if failed:
                failures += 1
                if failures >= self._max_attempts:
                    log.error(
                        "%s: dropping %s after %d attempts",
                        self._owner,
                        self._describe(event),
                        failures,
                    )
                    return
                await self._backoff.sleep(failures)
            elif retry_later:
                later += 1
                if later & (later - 1) == 0:  # 1st, 2nd, 4th, 8th... wait in a row
                    log.warning(
                        "%s: %s must wait (%s); trying again (%d)",
                        self._owner,
                        self._describe(event),
                        retry_later,
                        later,
                    )
                await self._backoff.sleep(later)

    async def _round(self, event: E) -> tuple[bool, bool, RetryLater | None]:
        """Hand ``event`` to each subscriber once: (one took it, one raised, one asked to
        retry later)."""
        taken = failed = False
        retry_later: RetryLater | None = None
        for deliver in list(self._delivers):
            try:
                taken = await deliver(event) or taken
            except RetryLater as e:
                retry_later = e
            except Exception:  # a subscriber's bug must not kill the poll loop
                failed = True
                log.exception("%s: subscriber failed on %s", self._owner, self._describe(event))
        return taken, failed, retry_later

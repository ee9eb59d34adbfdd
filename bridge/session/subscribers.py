"""Handing one event to every subscriber of a client, the rule both Session clients follow
(:mod:`bridge.session.client`, :mod:`bridge.session.groups.member`):

* every subscriber gets the event; one that raises is logged with its traceback and does not
  keep the others from getting it;
* if one raised, all get the event again after a backoff (doubling from ``retry_delay``, at
  most :data:`MAX_RETRY_DELAY_S`); after ``max_attempts`` rounds with a failure the event is
  dropped with an error line, so one poison event cannot block the client forever;
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

__all__ = ["MAX_RETRY_DELAY_S", "Deliver", "SubscriberList"]

E = TypeVar("E")

#: A subscriber: true once it has taken the event, false if it declined it (a closed stream).
Deliver: TypeAlias = Callable[[E], Awaitable[bool]]

#: The longest wait before an event a subscriber failed on is delivered again.
MAX_RETRY_DELAY_S = 30.0


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
        failures = 0
        while True:
            if self._wait_for_taker:
                await self._present.wait()
            taken, failed = await self._round(event)
            if not failed and (taken or not self._wait_for_taker):
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

    async def _round(self, event: E) -> tuple[bool, bool]:
        """Hand ``event`` to each subscriber once: (one took it, one raised)."""
        taken = failed = False
        for deliver in list(self._delivers):
            try:
                taken = await deliver(event) or taken
            except Exception:  # a subscriber's bug must not kill the poll loop
                failed = True
                log.exception("%s: subscriber failed on %s", self._owner, self._describe(event))
        return taken, failed

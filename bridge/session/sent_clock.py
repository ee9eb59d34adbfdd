"""The sent-timestamp clock shared by every Session identity the bridge runs (§2.11).

Section numbers (§n) refer to ``docs/session-protocol.md``. A message's sent timestamp (ms) is
its identity on Session: quotes, reactions, receipts and unsends name a message by it. Android
goes further and drops any incoming message whose timestamp it has already seen, *from any
sender*. Two identities of one bridge (the bot and a login, or two logins) writing to the same
Android user in the same millisecond would lose one of the two messages. So one clock hands
out every sent timestamp of the process — direct messages, group messages and community posts
of all identities — and never hands out the same value twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SentClock"]


def _local_ms() -> int:
    return int(time.time() * 1000)


class SentClock:
    """Strictly increasing sent timestamps in ms, following ``now_ms`` (network time when
    built by :class:`~bridge.session.snode.rpc.SnodeClient`, which keeps the store's 10 s
    future limit, §6.5). A burst of more than one message per millisecond runs ahead of
    ``now_ms`` by one ms per message and falls back to it as soon as the burst ends."""

    def __init__(self, now_ms: Callable[[], int] = _local_ms) -> None:
        self._now_ms = now_ms
        self._last = 0

    @property
    def last(self) -> int:
        """The last timestamp handed out (0 before the first)."""
        return self._last

    def next_ms(self) -> int:
        """A sent timestamp later than every one handed out before."""
        self._last = max(self._now_ms(), self._last + 1)
        return self._last

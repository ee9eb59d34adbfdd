"""Network time: the offset between our clock and the storage nodes' ``t`` (§6.3)."""

from __future__ import annotations

import time
from collections.abc import Callable


class NetworkClock:
    """Keeps an offset learned from node replies and uses it for signature timestamps."""

    def __init__(self, local_time: Callable[[], float] = time.time) -> None:
        self._local_time = local_time
        self.offset_ms = 0
        self.synced = False

    def local_ms(self) -> int:
        """Our own clock in ms."""
        return int(self._local_time() * 1000)

    def now_ms(self) -> int:
        """Network time in ms (our clock corrected by the last observed offset)."""
        return self.local_ms() + self.offset_ms

    def observe(self, network_ms: int) -> None:
        """Take the node time ``t`` of a reply as the current network time."""
        self.offset_ms = network_ms - self.local_ms()
        self.synced = True

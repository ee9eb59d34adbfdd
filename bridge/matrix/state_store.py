"""In-memory Matrix state store for mautrix's intents.

mautrix needs a state store for membership and power-level caching. Ours lives in memory (the
homeserver is the source of truth): after a restart each ghost costs one ``/register``
(``M_USER_IN_USE`` is success) and one ``/join`` per room. ``FileASStateStore``, mautrix's
default, would silently write ``mx-state.json`` into the working directory.
"""

from __future__ import annotations

from mautrix.appservice import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore


class MemoryBridgeStateStore(ASStateStore, MemoryStateStore):
    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)

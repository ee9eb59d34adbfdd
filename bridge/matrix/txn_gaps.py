"""Transactions the homeserver left unsent: noticed by the gap they leave in the ids.

Synapse numbers an appservice's transactions 1, 2, 3… and sends them one at a time, in order.
After an outage of the appservice it sends what queued up from its database ("recovery"), and
when nothing is left it marks the appservice up again. An event that arrives between the last
look into the database and that mark is put into a new transaction that is stored but never
sent: the recovery is over and the appservice, still marked down, was not sent to. It stays
there until the appservice next fails a transaction (docs/architecture.md §4.7). Seen in the
fault tests: a Matrix user's message stranded in Synapse's ``application_services_txns`` while
every later one was delivered.

The bridge sees such a transaction as a gap: after 244 comes 246. Answering 246 with an error
makes Synapse mark the appservice down and recover, and recovery sends the oldest stored
transaction first: 245, then 246 again. Synapse draws the numbers of every appservice it serves
from one counter, though, so beside other bridges the bridge's ids have gaps that are no loss.
Hence a gap is believed only after a long run of ids one apart (:data:`CONSECUTIVE_NEEDED`:
the homeserver serves this bridge alone, or the others are quiet), each id is refused once, and
when a refusal brings back the refused transaction rather than a missing one, the gaps are the
homeserver's way of numbering: the bridge stops asking until it restarts. So a false alarm costs
one retry once per start, and never stalls delivery; a refusal costs about 2 s, in which Synapse
drops what it would send without a room event (typing, receipts, to-device messages). An id
below the last one (Synapse on SQLite counts from its stored transactions again after a
restart) or one that is not a number starts the count afresh.

Pure bookkeeping: no I/O.
"""

from __future__ import annotations

from collections import deque

#: Ids in a row one apart before a gap is believed to be a transaction left unsent.
CONSECUTIVE_NEEDED = 20
#: How many refused ids are remembered (each is refused once).
REMEMBERED = 64


class TransactionGaps:
    """Which transaction to refuse once so that the homeserver sends the ones before it."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._run = 0  # ids in a row, each one above the one before, ending at _last
        self._refused: deque[int] = deque(maxlen=REMEMBERED)
        self._asked: int | None = None  # refused: what comes next tells whether it was a hole
        #: True once a refusal brought back the refused one: gaps are how ids are numbered.
        self.numbered_with_gaps = False

    def missing_before(self, txn_id: str) -> range | None:
        """The ids missing before ``txn_id`` when it should be refused for them (the first
        time only); None when it may be stored."""
        number = _number(txn_id)
        if self.numbered_with_gaps or number is None or self._last is None:
            return None
        if self._run < CONSECUTIVE_NEEDED or number <= self._last + 1 or number in self._refused:
            return None
        self._refused.append(number)
        self._asked = number
        return range(self._last + 1, number)

    def seed(self, stored_ids: list[str]) -> None:
        """Start from the transactions stored before a restart (oldest first), so that a
        transaction stranded while the bridge was away is noticed too."""
        for txn_id in stored_ids:
            self.stored(txn_id)

    def stored(self, txn_id: str) -> None:
        """``txn_id`` was stored (or was a replay of a stored one)."""
        number = _number(txn_id)
        if self._asked is not None:
            filled = number is not None and self._last is not None and number == self._last + 1
            self.numbered_with_gaps = self.numbered_with_gaps or not filled
            self._asked = None
        if number is None:
            self._last, self._run = None, 0
        elif self._last is not None and number == self._last + 1:
            self._last, self._run = number, self._run + 1
        elif self._last is None or number != self._last:
            self._last, self._run = number, 1


def _number(txn_id: str) -> int | None:
    return int(txn_id) if txn_id.isascii() and txn_id.isdigit() else None

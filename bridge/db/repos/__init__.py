"""Repositories: the only code that reads or writes the bridge database."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.db.engine import Database
from bridge.db.records import now_ms
from bridge.db.repos._sql import Clock
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.deadletters import DeadLetterRepo
from bridge.db.repos.expiring import ExpiringMessageRepo
from bridge.db.repos.ghosts import GhostRepo
from bridge.db.repos.inbox import MatrixInboxRepo
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.transactions import TransactionRepo
from bridge.db.repos.users import UserRepo

__all__ = [
    "Clock",
    "CursorRepo",
    "DeadLetterRepo",
    "ExpiringMessageRepo",
    "GhostRepo",
    "KVRepo",
    "MatrixInboxRepo",
    "MessageRepo",
    "OutboxRepo",
    "PortalRepo",
    "Repositories",
    "TransactionRepo",
    "UserRepo",
]


@dataclass(frozen=True, slots=True)
class Repositories:
    """Every repository over one database, for the composition root to hand out."""

    db: Database
    portals: PortalRepo
    ghosts: GhostRepo
    users: UserRepo
    messages: MessageRepo
    cursors: CursorRepo
    outbox: OutboxRepo
    transactions: TransactionRepo
    inbox: MatrixInboxRepo
    kv: KVRepo
    expiring: ExpiringMessageRepo
    dead_letters: DeadLetterRepo

    @classmethod
    def create(cls, db: Database, clock: Clock = now_ms) -> Repositories:
        """Build all repositories over ``db``, sharing one clock."""
        kv = KVRepo(db)
        return cls(
            db=db,
            portals=PortalRepo(db, clock),
            ghosts=GhostRepo(db, clock),
            users=UserRepo(db, clock),
            messages=MessageRepo(db),
            cursors=CursorRepo(db, clock),
            outbox=OutboxRepo(db, clock),
            transactions=TransactionRepo(db, clock),
            inbox=MatrixInboxRepo(db, clock),
            kv=kv,
            expiring=ExpiringMessageRepo(kv),
            dead_letters=DeadLetterRepo(db, clock),
        )

"""The appservice HTTP endpoint on top of mautrix's ``AppService``.

What mautrix gets wrong for a bridge, and what this subclass changes (docs/matrix-side.md §2.10):
- the hs_token is checked by :mod:`bridge.matrix.auth` (header, constant time) on every path;
- a transaction is acknowledged only after the sink has stored it durably; if that fails the
  answer is 500 so that the homeserver retries (mautrix logs and answers 200);
- transaction dedup is the sink's job (durable, keyed by id and body hash), not an in-memory set;
- only the ``/_matrix/app/v1`` routes exist (Synapse stopped calling the legacy ones in 1.87);
- the body limit is raised from aiohttp's 1 MiB, which would wedge delivery with a 413;
- bodies are read once, large ones a few at a time (:mod:`bridge.matrix.bodies`), and hostile
  content is dropped or cleaned rather than answered 500 forever
  (:mod:`bridge.matrix.transactions`);
- the bot's state events of one room are sent one at a time (:mod:`bridge.matrix.room_levels`);
- a transaction that comes after a gap in Synapse's numbering is refused once, so that the
  homeserver sends the transaction it left unsent first (:mod:`bridge.matrix.txn_gaps`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from mautrix.appservice import AppService

from bridge.matrix.auth import token_middleware
from bridge.matrix.bodies import Body, BodyReader, BodyTooLarge
from bridge.matrix.room_levels import one_state_send_per_room
from bridge.matrix.state_store import MemoryBridgeStateStore
from bridge.matrix.transactions import (
    BadTransaction,
    Transaction,
    parse_transaction,
    printable,
    txn_id_problem,
)
from bridge.matrix.txn_gaps import TransactionGaps

log = logging.getLogger("bridge.matrix.appservice")


class _AccessLogAtDebug(logging.Filter):
    """aiohttp logs one INFO line per request on ``aiohttp.access`` (most of a bridge's log,
    since the homeserver pushes every transaction); make those lines DEBUG: shown only when
    the bridge logs at DEBUG, and then labelled so."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


_ACCESS_LOG_FILTER = _AccessLogAtDebug()

QueryUser = Callable[[str], Awaitable[dict[str, Any] | None]]
# An alias of our namespace the homeserver does not know: True once it leads to a room.
QueryAlias = Callable[[str], Awaitable[bool]]


async def _no_alias(alias: str) -> bool:
    return False


class TransactionSink(Protocol):
    """Where accepted transactions go (wired by ``bridge.app``)."""

    async def accept_transaction(
        self,
        txn_id: str,
        body_hash: str,
        events: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
    ) -> bool:
        """Store the transaction durably; return False if it was seen before. Raise on failure."""
        ...


class CryptoSink(Protocol):
    """Where the encryption traffic of transactions goes (``bridge.matrix.e2ee``): it is never
    re-sent by the homeserver, so it is handled at once (docs/matrix-side.md §1.3, §1.4)."""

    async def handle_to_device(self, events: list[dict[str, Any]]) -> None: ...

    async def handle_device_lists(self, lists: dict[str, Any]) -> None: ...

    async def handle_otk_counts(self, counts: dict[str, Any]) -> None: ...


def _json_error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


class BridgeAppService(AppService):
    """mautrix ``AppService`` with durable, authenticated transaction handling."""

    def __init__(
        self,
        *,
        server: str,
        domain: str,
        as_token: str,
        hs_token: str,
        bot_localpart: str,
        registration_id: str,
        sink: TransactionSink,
        query_user: QueryUser | None = None,
        max_body_size: int = 64 * 1024 * 1024,
        verify_ssl: bool = True,
    ) -> None:
        logging.getLogger("aiohttp.access").addFilter(_ACCESS_LOG_FILTER)  # added once
        self.sink = sink
        self.crypto_sink: CryptoSink | None = None
        self.bodies = BodyReader(max_body_size)
        self._query_alias: QueryAlias = _no_alias
        self.gaps = TransactionGaps()
        super().__init__(
            server=server,
            domain=domain,
            as_token=as_token,
            hs_token=hs_token,
            bot_localpart=bot_localpart,
            id=registration_id,
            log=logging.getLogger("bridge.matrix.mautrix"),
            verify_ssl=verify_ssl,
            # mautrix's annotation says Request -> Response; it actually calls the hook with
            # the user id and answers 200 with a truthy dict (docs/matrix-side.md §2.1).
            query_user=query_user,  # type: ignore[arg-type]
            state_store=MemoryBridgeStateStore(),
            aiohttp_params={
                "client_max_size": max_body_size,
                "middlewares": [token_middleware(hs_token)],
            },
            ephemeral_events=True,
        )

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """mautrix's start (the bot's intent is made here), then the bot's state events of a
        room go one at a time (:func:`~bridge.matrix.room_levels.one_state_send_per_room`)."""
        await super().start(host, port)
        one_state_send_per_room(self.intent)

    def bind_query_user(self, query_user: QueryUser) -> None:
        """Answer user queries with ``query_user`` (bound after construction: the ghost
        manager that answers them needs this appservice's intents)."""
        # mautrix calls the hook with the user id (see the note in __init__).
        self.query_user = query_user  # type: ignore[assignment]

    def bind_crypto(self, crypto: CryptoSink) -> None:
        """Hand the encryption traffic of transactions to ``crypto`` from now on."""
        self.crypto_sink = crypto

    async def _feed_crypto(self, txn: Transaction) -> None:
        sink = self.crypto_sink
        if sink is None:
            return
        steps = [
            (txn.otk_counts, sink.handle_otk_counts),
            (txn.device_lists, sink.handle_device_lists),
            (txn.to_device, sink.handle_to_device),
        ]
        for data, handle in steps:
            if not data:
                continue
            try:
                await handle(data)  # type: ignore[operator]
            except Exception:
                log.exception("Handling the encryption traffic of a transaction failed")

    def bind_query_alias(self, query_alias: QueryAlias) -> None:
        """Answer alias queries with ``query_alias`` (bound once the portals exist)."""
        self._query_alias = query_alias

    def register_routes(self, app: web.Application) -> None:
        prefix = "/_matrix/app/v1"
        app.router.add_put(
            prefix + "/transactions/{transaction_id}", self._http_handle_transaction
        )
        app.router.add_get(prefix + "/users/{user_id}", self._http_query_user)
        app.router.add_get(prefix + "/rooms/{alias}", self._http_room_alias)
        app.router.add_post(prefix + "/ping", self._http_ping)

    async def _http_room_alias(self, request: web.Request) -> web.Response:
        # The homeserver asks when an alias of our namespace is unknown; it waits while we
        # create the room and publish the alias, then reads the alias again. 200 {} = it
        # exists now, 404 = no such room (docs/matrix-side.md §1.5).
        alias = request.match_info["alias"]
        try:
            found = await self._query_alias(alias)
        except Exception:
            log.exception("Answering the alias query for %s failed", alias)
            return _json_error(500, "M_UNKNOWN", "Alias query failed")
        if not found:
            return _json_error(404, "M_NOT_FOUND", "No such room")
        return web.json_response({})

    def _check_token(self, request: web.Request) -> bool:
        # token_middleware has already refused every request without the right token.
        return True

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        # Whatever is wrong with a transaction, the answer must let the homeserver move on:
        # 200 with the bad parts dropped, 400 for what is no transaction, 500 only when the
        # database could not store it (bridge/matrix/transactions.py).
        txn_id = request.match_info["transaction_id"]
        problem = txn_id_problem(txn_id)
        if problem is not None:
            log.warning("Refusing transaction id %s: it %s", printable(txn_id), problem)
            return _json_error(400, "M_INVALID_PARAM", f"The transaction id {problem}")
        async with self.bodies.slot(request.content_length):
            try:
                body = await self.bodies.read(request)
            except BodyTooLarge:
                limit = self.bodies.max_size
                log.warning("Refusing transaction %s: body over %d bytes", txn_id, limit)
                return _json_error(413, "M_TOO_LARGE", f"Body over {limit} bytes")
            try:
                if self.bodies.is_large(body.size):
                    # Parsing tens of MiB takes a while: keep the event loop answering.
                    txn = await asyncio.to_thread(_parse, txn_id, body)
                else:
                    txn = _parse(txn_id, body)
            except BadTransaction as e:
                log.warning("Refusing transaction %s: %s", txn_id, e)
                return _json_error(400, e.errcode, str(e))
            return await self._store(txn_id, body.sha256, txn)

    async def _store(self, txn_id: str, body_hash: str, txn: Transaction) -> web.Response:
        # Keys first: an encrypted event of this transaction may need the room key it carries.
        await self._feed_crypto(txn)
        missing = self.gaps.missing_before(txn_id)
        if missing is not None:
            return await self._ask_for_missing(txn_id, body_hash, txn, missing)
        try:
            fresh = await self.sink.accept_transaction(
                txn_id, body_hash, txn.events, txn.ephemeral
            )
        except Exception:
            log.exception("Could not store transaction %s; the homeserver will retry it", txn_id)
            return _json_error(500, "M_UNKNOWN", "Transaction not stored, retry later")
        self._stored(txn_id)
        if fresh:
            log.debug("Accepted transaction %s with %d events", txn_id, len(txn.events))
        else:
            log.info("Transaction %s was already processed; acknowledging again", txn_id)
        return web.json_response({})

    def _stored(self, txn_id: str) -> None:
        gaps_before = self.gaps.numbered_with_gaps
        self.gaps.stored(txn_id)
        if self.gaps.numbered_with_gaps and not gaps_before:
            log.info(
                "Transaction %s came again instead of the missing ones: the homeserver numbers "
                "with gaps (other appservices); no transaction is refused for a gap from now on",
                txn_id,
            )

    async def _ask_for_missing(
        self, txn_id: str, body_hash: str, txn: Transaction, missing: range
    ) -> web.Response:
        """Refuse ``txn_id`` once: the homeserver then sends the transactions it left
        unsent, and this one again (:mod:`bridge.matrix.txn_gaps`). What it would not send
        again is kept now: the encryption traffic (fed above) and the ephemeral events."""
        first, last = missing.start, missing.stop - 1
        shown = str(first) if first == last else f"{first} to {last}"
        log.warning(
            "Transaction %s came without transaction %s: refusing it once so that the "
            "homeserver sends the missing one first",
            txn_id,
            shown,
        )
        if txn.ephemeral:
            try:
                await self.sink.accept_transaction(
                    txn_id, f"{body_hash}:ephemeral", [], txn.ephemeral
                )
            except Exception:
                log.exception("Could not store the ephemeral events of transaction %s", txn_id)
        return _json_error(503, "M_UNKNOWN", f"Transaction {shown} is missing: send it first")


def _parse(txn_id: str, body: Body) -> Transaction:
    return parse_transaction(txn_id, body.take_text())

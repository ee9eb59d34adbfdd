"""The devnet community server ("SOGS"), an aiohttp app (docs/session-protocol.md §5).

Every request passes the real server-side checks: ``X-SOGS-*`` signatures through
:func:`bridge.session.sogs.auth.verify_request` (blind15 ``15…`` and, unless blinding is
required, plain ``00…`` keys), the ±24 h timestamp window (425) and nonce reuse (425, as
pysogs answers), then the endpoint itself (:mod:`tests.sessionnet.community_routes`), which
verifies post signatures. ``/batch`` and ``/sequence`` run their subrequests as the user who
signed the outer request (§5.9). State is in memory (:mod:`tests.sessionnet.community_state`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.ids import BlindedID, SessionID, UnblindedSogsID
from bridge.session.sogs.auth import (
    MAX_CLOCK_SKEW_SECONDS,
    SogsAuthError,
    check_timestamp,
    signing_path,
    verify_request,
)
from tests.sessionnet.community_routes import MAX_UPLOAD, Call, Reply, Routes
from tests.sessionnet.community_state import CommunityState, HttpError, RoomSpec

log = logging.getLogger("tests.sessionnet.community")

DEFAULT_ROOMS = (
    RoomSpec("lobby", "Lobby", "Devnet community lobby"),
    RoomSpec("dev", "Development", "Talk about the bridge"),
)
_SUB_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
NOT_FOUND_PAGE = (
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>Nothing here.</p>\n"
)


class CommunityServer:
    """A community server with the configured ``rooms`` and its own X25519 key pair.

    ``require_blind`` advertises the ``blind`` capability and refuses ``00`` keys (400), as
    current official servers do. ``pubkey`` overrides the server key (the private half is
    only needed for onion requests, which this devnet does not serve); tests use it to replay
    the §8.3 vectors. ``clock`` gives Unix seconds.
    """

    def __init__(
        self,
        rooms: Iterable[RoomSpec] = DEFAULT_ROOMS,
        *,
        require_blind: bool = True,
        pubkey: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._private = nacl.public.PrivateKey.generate()
        self.pubkey = pubkey if pubkey is not None else bytes(self._private.public_key)
        self.require_blind = require_blind
        self.clock = clock
        self.state = CommunityState(clock)
        for spec in rooms:
            self.state.add_room(spec)
        capabilities = ["sogs", "reactions"] + (["blind"] if require_blind else [])
        self.routes = Routes(self.state, capabilities)
        self._nonces: dict[bytes, float] = {}

    @property
    def pubkey_hex(self) -> str:
        """The key clients put in ``?public_key=`` (§5.1)."""
        return self.pubkey.hex()

    def make_app(self, middlewares: Sequence[Middleware] = ()) -> web.Application:
        """The aiohttp application; extra ``middlewares`` (e.g. request counters) run first."""
        app = web.Application(middlewares=list(middlewares), client_max_size=MAX_UPLOAD + 4096)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def add_moderator(self, token: str, session_id: str) -> None:
        """Make ``session_id`` (as it authenticates: ``15…`` on a blinding server) a moderator
        of a room, as an admin's ``POST /user/{id}/moderator`` would; moderators may whisper
        and see the whispers to the moderators (§5.5, §5.6)."""
        self.state.room(token).moderators.add(session_id)

    def bump_room_info(self, token: str, *, name: str | None = None) -> int:
        """Change a room's info (as an admin ``PUT /room`` would); returns ``info_updates``."""
        room = self.state.room(token)
        if name is not None:
            room.name = name
        room.info_updates += 1
        return room.info_updates

    # --- request handling ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
            user = self._authenticate(request, body)
            call = Call(
                request.method,
                request.path,
                dict(request.query),
                body,
                user,
                {k.lower(): v for k, v in request.headers.items()},
            )
            reply = self._run(call)
        except web.HTTPException:
            raise
        except HttpError as exc:
            if exc.status == 404:  # pysogs answers a 404 with its web framework's HTML page
                return web.Response(status=404, text=NOT_FOUND_PAGE, content_type="text/html")
            return web.Response(status=exc.status, text=str(exc))
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=reply.headers)
        if reply.status == 304:
            return web.Response(status=304)
        return web.json_response(reply.body, status=reply.status)

    def _authenticate(self, request: web.Request, body: bytes) -> str | None:
        """The requesting user (``15…`` or ``05…``), ``None`` if anonymous; refusals raise."""
        try:
            path = signing_path(request.raw_path)
            auth = verify_request(request.headers, self.pubkey, request.method, path, body)
            if auth is None:
                return None
            check_timestamp(auth.timestamp, self.clock())
        except SogsAuthError as exc:
            raise HttpError(exc.http_status, f"Invalid authentication: {exc}") from exc
        self._use_nonce(auth.nonce)
        if isinstance(auth.signer, UnblindedSogsID):
            if self.require_blind:
                raise HttpError(400, "Invalid authentication: this server requires blinded ids")
            return _session_id_of(auth.signer)
        assert isinstance(auth.signer, BlindedID)
        self.state.touch(auth.signer.value)
        return auth.signer.value

    def _use_nonce(self, nonce: bytes) -> None:
        now = self.clock()
        # Nonces only need remembering while their timestamp could still be accepted.
        self._nonces = {
            n: t for n, t in self._nonces.items() if now - t <= 2 * MAX_CLOCK_SKEW_SECONDS
        }
        if nonce in self._nonces:
            raise HttpError(425, "Invalid authentication: X-SOGS-Nonce cannot be reused")
        self._nonces[nonce] = now

    def _run(self, call: Call) -> Reply:
        if call.path in ("/batch", "/sequence"):
            if call.method != "POST":
                raise HttpError(405, "batch requests are POST")
            return Reply(body=self._batch(call, stop_on_error=call.path == "/sequence"))
        return self.routes.dispatch(call)

    # --- /batch and /sequence (§5.9) --------------------------------------------------------

    def _batch(self, call: Call, *, stop_on_error: bool) -> list[dict[str, Any]]:
        requests = call.json()
        if not isinstance(requests, list) or not requests:
            raise HttpError(400, "batch body must be a non-empty JSON list")
        results: list[dict[str, Any]] = []
        for sub in requests:
            sub_call = _subrequest(sub, call.user)
            try:
                result = _sub_result(self.routes.dispatch(sub_call))
            except HttpError as exc:
                result = {"code": exc.status, "headers": {}, "body": str(exc)}
            results.append(result)
            if stop_on_error and not 200 <= result["code"] < 300:
                break
        return results


def _session_id_of(signer: UnblindedSogsID) -> str:
    """The ``05`` id of an unblinded (``00``) signer: Ed25519 key → X25519 (§1.3)."""
    try:
        x_public = sodium.crypto_sign_ed25519_pk_to_curve25519(signer.key)
    except Exception as exc:
        raise HttpError(400, "Invalid authentication: bad X-SOGS-Pubkey") from exc
    return SessionID.from_key(bytes(x_public)).value


def _subrequest(sub: object, user: str | None) -> Call:
    """A subrequest ``{method, path, headers?, json|b64|bytes}`` as a :class:`Call`."""
    if not isinstance(sub, dict):
        raise HttpError(400, "each subrequest must be an object")
    method, target = sub.get("method"), sub.get("path")
    if method not in _SUB_METHODS or not isinstance(target, str) or not target.startswith("/"):
        raise HttpError(400, "subrequest needs a method and a path starting with /")
    path, _, query_text = target.partition("?")
    if path in ("/batch", "/sequence"):
        raise HttpError(400, "batch requests cannot nest")
    query = dict(part.partition("=")[::2] for part in query_text.split("&") if part)
    if "json" in sub:
        body = json.dumps(sub["json"]).encode()
    elif "b64" in sub:
        try:
            body = base64.b64decode(str(sub["b64"]), validate=True)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise HttpError(400, "subrequest b64 body is not base64") from exc
    else:
        body = str(sub.get("bytes", "")).encode()
    headers = sub.get("headers") or {}
    if not isinstance(headers, dict):
        raise HttpError(400, "subrequest headers must be an object")
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return Call(str(method), unquote(path), query, body, user, lowered)


def _sub_result(reply: Reply) -> dict[str, Any]:
    """``{code, headers, body}``: JSON bodies as JSON, raw bodies as base64 (§5.9)."""
    if reply.raw is not None:
        body: Any = base64.b64encode(reply.raw).decode("ascii")
        headers = {"content-type": "application/octet-stream", **reply.headers}
    else:
        body = reply.body
        headers = {"content-type": "application/json"}
    return {"code": reply.status, "headers": headers, "body": body}

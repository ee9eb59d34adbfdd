"""Authentication of the homeserver's requests to the appservice (hs_token).

Spec (application-service-api#authorisation): the token comes in ``Authorization: Bearer``;
a legacy ``?access_token=`` may come too, and then both must match. A missing token is 401
``M_UNAUTHORIZED``; a wrong one is 403 ``M_FORBIDDEN``. Compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths that carry no secret and need no token (liveness and readiness probes).
OPEN_PATH_PREFIX = "/_matrix/mau/"


class TokenCheck(Enum):
    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"


def check_hs_token(
    headers: Mapping[str, str], query: Mapping[str, str], expected: str
) -> TokenCheck:
    """Check the request's hs_token: the header is required, a query token must agree."""
    header = headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return TokenCheck.MISSING
    presented = [header.removeprefix("Bearer ").encode()]
    if "access_token" in query:
        presented.append(query["access_token"].encode())
    wanted = expected.encode()
    # Evaluate every comparison (no short-circuit) so timing does not depend on which failed.
    results = [hmac.compare_digest(token, wanted) for token in presented]
    return TokenCheck.OK if all(results) else TokenCheck.WRONG


def _error(status: int, errcode: str, message: str) -> web.Response:
    body = json.dumps({"errcode": errcode, "error": message})
    return web.Response(status=status, text=body, content_type="application/json")


def token_middleware(
    expected: str,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that guards every path except the open probes."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(OPEN_PATH_PREFIX):
            return await handler(request)
        result = check_hs_token(request.headers, request.query, expected)
        if result is TokenCheck.MISSING:
            return _error(401, "M_UNAUTHORIZED", "Missing hs_token in the Authorization header")
        if result is TokenCheck.WRONG:
            return _error(403, "M_FORBIDDEN", "Invalid hs_token")
        return await handler(request)

    return middleware

"""The devnet seed node: ``POST /json_rpc`` with ``get_n_service_nodes`` (§6.1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web


def make_seed_app(list_nodes: Callable[[], list[dict[str, Any]]]) -> web.Application:
    """An aiohttp app answering oxend-style JSON-RPC with the current service-node list."""

    async def json_rpc(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response(_error(None, -32700, "Parse error"))
        if not isinstance(body, dict):
            return web.json_response(_error(None, -32600, "Invalid Request"))
        rpc_id = body.get("id")
        if body.get("method") != "get_n_service_nodes":
            return web.json_response(_error(rpc_id, -32601, "Method not found"))
        params = body.get("params")
        fields = params.get("fields") if isinstance(params, dict) else None
        states = [_select(s, fields) for s in list_nodes()]
        result = {"service_node_states": states, "height": 1000, "status": "OK"}
        return web.json_response({"jsonrpc": "2.0", "id": rpc_id, "result": result})

    app = web.Application()
    app.router.add_post("/json_rpc", json_rpc)
    return app


def _select(state: dict[str, Any], fields: object) -> dict[str, Any]:
    """Keep only the requested fields (all of them when ``fields`` is absent)."""
    if not isinstance(fields, dict) or not fields:
        return state
    return {k: v for k, v in state.items() if fields.get(k)}


def _error(rpc_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}

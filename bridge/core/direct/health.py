"""``status`` lines of the direct-chat side: the Session storage network (seeds and the bot's
swarm), which every login's client uses (docs/session-protocol.md §6)."""

from __future__ import annotations

from bridge.core.portal.health import Check, run_check
from bridge.session.snode.rpc import SnodeClient


async def _seeds(snode: SnodeClient) -> str:
    nodes = await snode.pool.refresh()
    return f"{len(nodes)} service nodes"


async def _swarm(snode: SnodeClient, account: str) -> str:
    nodes = await snode.get_swarm(account, refresh=True)
    info = await snode.info(nodes[0])
    version = info.get("version")
    shown = ".".join(map(str, version)) if isinstance(version, list) else "?"
    return f"{len(nodes)} nodes; one answered (version {shown})"


async def network_checks(snode: SnodeClient, bot_session_id: str) -> list[Check]:
    """Can the seeds be asked for the node list, and does the bot's swarm answer?"""
    return [
        await run_check("Session seed nodes", _seeds(snode)),
        await run_check("Session storage swarm (the bot's)", _swarm(snode, bot_session_id)),
    ]

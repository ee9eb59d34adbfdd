"""Storage-server ("snode") client: auth (pure), node pool, RPC with retries (§6)."""

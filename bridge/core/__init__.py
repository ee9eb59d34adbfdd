"""The only layer that knows both sides: portals, ghosts, logins, queues and converters."""

"""The Matrix side: the appservice endpoint and the homeserver client (mautrix).

Knows nothing of Session or SQL: what arrives is handed to a sink that ``bridge.app`` wires.
"""

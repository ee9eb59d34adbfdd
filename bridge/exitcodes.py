"""Process exit codes of ``python -m bridge``, one per reason, so operators and init
systems can tell failures apart."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    BAD_CONFIG = 2
    CONFIG_CREATED = 3
    PLACEHOLDER_CONFIG = 4
    DATABASE = 5
    HOMESERVER_UNREACHABLE = 6
    BOT_AUTH_FAILED = 7
    PING_FAILED = 8
    LISTEN_FAILED = 9
    DATABASE_UNREACHABLE = 10

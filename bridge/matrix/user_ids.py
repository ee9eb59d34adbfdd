"""Matrix user ids: what may stand in an event's ``sender``.

The grammar is the Matrix spec's, including the historical user ids that older homeservers let
through (any printable ASCII but ``:`` in the localpart): ``@localpart:server_name``, the server
name a DNS name, an IPv4 address or a bracketed IPv6 address with an optional port, at most 255
bytes in all. Anything else is not a user, whatever a transaction says.
"""

from __future__ import annotations

import re

__all__ = ["MAX_USER_ID_LENGTH", "is_user_id"]

MAX_USER_ID_LENGTH = 255

_USER_ID = re.compile(
    r"@[\x21-\x39\x3b-\x7e]+"  # historical localpart: printable ASCII without ':'
    r":(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})"  # [IPv6] / IPv4 / DNS name
    r"(?::[0-9]{1,5})?",
    re.ASCII,
)


def is_user_id(value: object) -> bool:
    """Whether ``value`` is a syntactically valid Matrix user id."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_USER_ID_LENGTH
        and _USER_ID.fullmatch(value) is not None
    )

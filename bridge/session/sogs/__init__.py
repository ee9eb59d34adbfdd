"""Community server ("SOGS") support: request authentication, post signatures, blinded inbox.

The pure crypto lives in :mod:`.auth` (§5.2), :mod:`.posts` (§5.6, §5.11) and :mod:`.inbox`
(§5.10) of docs/session-protocol.md.
"""

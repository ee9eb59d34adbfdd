"""Session direct chats (one-to-one) bridged to Matrix DM rooms: the running Session
accounts, both directions, media and profiles. :mod:`.wiring` builds it."""

"""Session communities (community servers) bridged to Matrix rooms: the per-server pollers,
both directions, media, reactions and room info. :mod:`.wiring` builds it."""

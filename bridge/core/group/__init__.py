"""Session groups v2 as Matrix portal rooms (docs/architecture.md §3.3)."""

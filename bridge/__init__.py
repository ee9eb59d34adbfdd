"""Session <-> Matrix bridge."""

__version__ = "0.1.0"

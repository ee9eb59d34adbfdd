"""Bot commands: parsing, permissions, the registry and one module per domain."""

"""User configs of an account (namespaces 2-5): UserProfile, Contacts, ConvoInfoVolatile and
UserGroups, read, merged and written as the official apps do (docs/user-configs.md)."""

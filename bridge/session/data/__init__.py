"""Data files of the Session client (the English recovery-phrase word list)."""

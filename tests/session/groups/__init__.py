"""Tests of ``bridge.session.groups`` (groups-v2.md)."""

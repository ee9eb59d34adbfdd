"""Tests of ``bridge.session.groups`` (docs/groups-v2.md)."""

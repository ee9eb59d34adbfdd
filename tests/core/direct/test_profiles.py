"""The Session name of a login comes from its owner's Matrix name, cleaned first."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bridge.core.direct.profiles import SessionProfiles


class FakeClient:
    def __init__(self) -> None:
        self.profile: Any = None
        self.session_id = SimpleNamespace(value="05" + "ab" * 32)
        self.names: list[str] = []

    async def set_profile(self, name: str) -> None:
        self.names.append(name)
        self.profile = SimpleNamespace(display_name=name)


async def test_a_matrix_name_reaches_session_without_controls_escapes_or_overrides() -> None:
    client = FakeClient()
    await SessionProfiles.update_name(client, "Al\u202eice\x00 \x1b[5mB\x07")  # type: ignore[arg-type]
    assert client.names == ["Alice B"]
    await SessionProfiles.update_name(client, "\u202e\x00")  # type: ignore[arg-type]
    assert client.names == ["Alice B"]  # nothing left: the name is kept

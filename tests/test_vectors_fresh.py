from __future__ import annotations

from pathlib import Path

import pytest

from tests.vectors import VECTOR_DIR

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "vectors"


@pytest.mark.parametrize("name", ["session-protocol.json", "groups-v2.json"])
def test_vector_copies_match_shared(name: str) -> None:
    ours = (VECTOR_DIR / name).read_bytes()
    assert ours, "vector file is empty"
    shared = SHARED / name
    if shared.exists():
        assert ours == shared.read_bytes(), f"tests/vectors/{name} is stale; copy it from shared/"
    else:
        # Outside the workplace (a bare clone) there is nothing to compare with; the copy is
        # then the reference, and it must at least parse.
        import json

        assert json.loads(ours)

"""The known-answer vectors committed in ``tests/vectors/``.

The suite uses only these committed copies: each must exist, parse and have the structure the
tests read. They are copies of the shared vectors; point ``$SMB_SHARED_VECTORS`` at the shared
directory (``../shared/vectors`` in the workplace) to check byte for byte that the copies are
current. Without it that comparison is reported as skipped, never as passed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.vectors import VECTOR_DIR

SHARED_ENV = "SMB_SHARED_VECTORS"

# File -> the top-level keys the tests read.
EXPECTED: dict[str, set[str]] = {
    "session-protocol.json": {
        "identity",
        "blinding",
        "sogs_auth",
        "one_to_one",
        "storage_hash",
        "storage_signatures",
        "padding",
    },
    "groups-v2.json": {"cases"},
}


def committed(name: str) -> Any:
    path = VECTOR_DIR / name
    assert path.is_file(), f"tests/vectors/{name} is missing: the tests need the committed copy"
    return json.loads(path.read_bytes())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_vectors_have_the_expected_structure(name: str) -> None:
    data = committed(name)
    assert isinstance(data, dict)
    missing = EXPECTED[name] - set(data)
    assert not missing, f"tests/vectors/{name} lacks {sorted(missing)}"
    for key in EXPECTED[name]:
        assert data[key], f"tests/vectors/{name}: {key} is empty"


def test_every_session_protocol_section_is_a_mapping() -> None:
    data = committed("session-protocol.json")
    for key in EXPECTED["session-protocol.json"]:
        assert isinstance(data[key], dict), key


def test_groups_v2_cases_are_named_uniquely() -> None:
    cases = committed("groups-v2.json")["cases"]
    assert isinstance(cases, list) and cases
    names = [case["name"] for case in cases]
    assert all(isinstance(name, str) and name for name in names)
    assert len(set(names)) == len(names)


@pytest.mark.skipif(
    not os.environ.get(SHARED_ENV),
    reason=f"${SHARED_ENV} is not set: the copies are not compared with the shared vectors",
)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_copies_match_the_shared_vectors(name: str) -> None:
    shared = Path(os.environ[SHARED_ENV])
    assert shared.is_dir(), f"${SHARED_ENV}={shared} is not a directory"
    assert (shared / name).is_file(), f"{shared / name} is missing"
    assert (VECTOR_DIR / name).read_bytes() == (shared / name).read_bytes(), (
        f"tests/vectors/{name} differs from {shared / name}: copy the shared file over it"
    )

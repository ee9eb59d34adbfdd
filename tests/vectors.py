"""Known-answer vectors from the real Session implementations.

The files in ``tests/vectors/`` are committed copies of the shared vectors, so the tests need
nothing outside the repository; a missing file fails the tests that read it.
``tests/test_vectors_fresh.py`` checks their structure, and compares them with the shared
vectors when ``$SMB_SHARED_VECTORS`` points at them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent / "vectors"


@cache
def load(name: str) -> dict[str, Any]:
    """Load ``tests/vectors/<name>.json`` (``session-protocol`` or ``groups-v2``)."""
    with (VECTOR_DIR / f"{name}.json").open() as f:
        data: dict[str, Any] = json.load(f)
    return data

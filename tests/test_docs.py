"""Every document the code cites is in the repository, and every cited section exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CITATION = re.compile(r"\b(docs/[a-z0-9-]+\.md)(?: ?§ ?(\d+(?:\.\d+)*))?")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)
# The team's reference documents outside the repository, cited without docs/ before.
FOREIGN = re.compile(r"(?<![\w/.-])(design|session-protocol|groups-v2|matrix-side)\.md")


def cited() -> list[tuple[str, str, str | None]]:
    found = []
    for folder in ("bridge", "tests", "bench", "scripts", "alembic"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".sh", ".proto") or not path.is_file():
                continue
            for match in CITATION.finditer(path.read_text(encoding="utf-8")):
                found.append((str(path.relative_to(ROOT)), match[1], match[2]))
    return found


CITED = cited()


def sections(doc: str) -> set[str]:
    return set(HEADING.findall((ROOT / doc).read_text(encoding="utf-8")))


def test_the_code_cites_the_projects_docs() -> None:
    assert len(CITED) > 50


@pytest.mark.parametrize(
    ("where", "doc", "section"), CITED, ids=[f"{w}:{d}§{s}" for w, d, s in CITED]
)
def test_cited_section_exists(where: str, doc: str, section: str | None) -> None:
    assert (ROOT / doc).is_file(), f"{where} cites {doc}, which is not in the repository"
    if section is not None:
        assert section in sections(doc), f"{where} cites {doc} §{section}, which has no heading"


def test_no_citation_of_documents_outside_the_repository() -> None:
    bad = []
    for folder in ("bridge", "tests", "bench", "scripts", "alembic"):
        for path in (ROOT / folder).rglob("*.py"):
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for match in FOREIGN.finditer(line):
                    if line[max(0, match.start() - 5) : match.start()] != "docs/":
                        bad.append(f"{path.relative_to(ROOT)}:{line_no}")
    assert not bad, bad

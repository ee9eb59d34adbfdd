from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.session.__main__ import main
from bridge.session.keys import Identity
from tests.vectors import load

VECTORS: dict[str, Any] = load("session-protocol")
BLIND_CASE: dict[str, str] = VECTORS["blinding"]["cases"][0]
ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue().splitlines(), err.getvalue()


def test_new_prints_a_phrase_and_its_session_id() -> None:
    status, lines, err = run("new")
    assert (status, err) == (0, "")
    phrase, session_id = lines
    assert len(phrase.split()) == 13
    assert Identity.from_phrase(phrase).session_id.value == session_id


@pytest.mark.parametrize("case", VECTORS["identity"]["cases"], ids=lambda c: c["seed16"])
def test_id_of_a_phrase(case: dict[str, str]) -> None:
    assert run("id", *case["phrase"].split()) == (0, [case["session_id"]], "")
    assert run("id", case["phrase"].upper()) == (0, [case["session_id"]], "")


def test_blind_prints_both_candidates() -> None:
    status, lines, err = run("blind", BLIND_CASE["session_id"], BLIND_CASE["server_pubkey"])
    assert (status, err) == (0, "")
    assert lines == [BLIND_CASE["blind15"], BLIND_CASE["blind15_other_candidate"]]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["id"],
        ["id", "abbey"],
        ["id", *(["zzzz"] * 13)],
        ["blind", BLIND_CASE["session_id"]],
        ["blind", "15" + BLIND_CASE["session_id"][2:], BLIND_CASE["server_pubkey"]],
        ["blind", BLIND_CASE["session_id"], "abcd"],
        ["blind", "05" + "ec" + "ff" * 30 + "7f", BLIND_CASE["server_pubkey"]],
    ],
)
def test_errors_are_one_line_on_stderr_with_status_2(argv: list[str]) -> None:
    status, lines, err = run(*argv)
    assert status == 2
    assert lines == []
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_phrase_words_are_not_echoed_in_errors() -> None:
    words = VECTORS["identity"]["cases"][0]["phrase"].split()
    words[3] = "qqqsecret"
    status, _, err = run("id", *words)
    assert status == 2
    assert "qqqsecret" not in err and words[0] not in err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_module_runs_as_a_program() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.session",
            "blind",
            BLIND_CASE["session_id"],
            BLIND_CASE["server_pubkey"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        BLIND_CASE["blind15"],
        BLIND_CASE["blind15_other_candidate"],
    ]
    failed = subprocess.run(
        [sys.executable, "-m", "bridge.session", "id", "abbey"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.count("\n") == 1

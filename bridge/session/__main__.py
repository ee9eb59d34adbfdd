"""Diagnostics for Session identities: ``python -m bridge.session COMMAND``.

* ``new`` — print a new recovery phrase and its Session ID, one per line;
* ``id WORD…`` — print the Session ID of a recovery phrase;
* ``blind SESSION_ID SERVER_PUBKEY`` — print the two blind15 candidates, one per line.

Output is only the values; an error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from bridge.session.blinding import blind15_candidates, parse_server_pubkey
from bridge.session.errors import SessionError
from bridge.session.keys import Identity, parse_session_id

__all__ = ["main"]

EXIT_USAGE = 2


class _UsageError(Exception):
    """An argparse error, raised instead of argparse printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bridge.session", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("new", help="create a new account: phrase and Session ID")
    id_command = commands.add_parser("id", help="Session ID of a recovery phrase")
    id_command.add_argument("words", nargs="+", metavar="WORD")
    blind = commands.add_parser("blind", help="blind15 candidates of a Session ID")
    blind.add_argument("session_id", metavar="SESSION_ID")
    blind.add_argument("server_pubkey", metavar="SERVER_PUBKEY")
    return parser


def _run(args: argparse.Namespace) -> list[str]:
    """The output lines of a parsed command."""
    if args.command == "new":
        identity = Identity.generate()
        return [identity.phrase, identity.session_id.value]
    if args.command == "id":
        return [Identity.from_phrase(" ".join(args.words)).session_id.value]
    candidates = blind15_candidates(
        parse_session_id(args.session_id), parse_server_pubkey(args.server_pubkey)
    )
    return [candidate.value for candidate in candidates]


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit status (0, or 2 after one error line on stderr)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        lines = _run(_build_parser().parse_args(argv))
    except (_UsageError, SessionError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    for line in lines:
        print(line, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

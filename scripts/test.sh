#!/usr/bin/env bash
# The whole test suite from nothing: a virtualenv with the project and its test dependencies
# (pinned by constraints.txt), the lint, format and type gates, a throw-away PostgreSQL and a
# throw-away Synapse on loopback, the bridge's own config and registration, then pytest;
# whatever it started is stopped on exit.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/session   # arguments go to pytest
#   bash scripts/test.sh --unit [ARGS]   # the gates, then pytest -m "not integration" without
#                                        # starting PostgreSQL or Synapse
#
# Environment: SMB_TEST_VENV (default .venv), SMB_TEST_KEEP=1 keeps the work directory,
# SMB_SHARED_VECTORS compares tests/vectors with the shared vectors.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${SMB_TEST_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
UNIT=0
if [ "${1:-}" = "--unit" ]; then
    UNIT=1
    shift
fi

log() { printf '[test] %s\n' "$*" >&2; }

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
install_project test -e "$ROOT[test]"

# --- gates: any finding fails the run before a server is started --------------------------
log "ruff check"
"$VENV/bin/ruff" check bridge tests
log "ruff format --check"
"$VENV/bin/ruff" format --check bridge tests
log "mypy (strict, see pyproject.toml)"
"$VENV/bin/mypy" bridge

# --- tests ---------------------------------------------------------------------------------
pytest_args=(-p no:cacheprovider)
if [ $UNIT = 1 ]; then
    pytest_args+=(-m "not integration")
else
    # shellcheck source=scripts/services.sh
    source "$ROOT/scripts/services.sh"
fi
log "running pytest"
set +e
"$VENV/bin/python" -m pytest "${pytest_args[@]}" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    log "pytest collected no tests: that is a failure"
    exit 1
fi
exit $rc

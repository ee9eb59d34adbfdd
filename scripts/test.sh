#!/usr/bin/env bash
# The whole test suite from nothing: a virtualenv with the project and its test dependencies,
# a throw-away PostgreSQL and a throw-away Synapse on loopback, the bridge's own config and
# registration, then pytest; whatever it started is stopped on exit.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/session   # arguments go to pytest
#
# Environment: BRIDGE_TEST_VENV (default .venv), BRIDGE_TEST_KEEP=1 keeps the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${BRIDGE_TEST_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

# --- tests ---------------------------------------------------------------------------------
log "running pytest"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    log "pytest collected no tests: that is a failure"
    exit 1
fi
exit $rc

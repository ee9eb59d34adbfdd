#!/usr/bin/env bash
# The scale benchmark (bench/bench_scale.py): starts PostgreSQL and Synapse like
# scripts/test.sh, then starts the bridge as its own process on a database seeded with many
# portals, logins and ghosts, and prints its time to ready and its memory. Arguments go to
# the benchmark (e.g. --sqlite, --community 1000 --dm 1000 --ghosts 10000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${SMB_TEST_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
install_project test -e "$ROOT[test]"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

log "running the scale benchmark"
"$VENV/bin/python" -m bench.bench_scale "$@"

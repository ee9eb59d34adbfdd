#!/usr/bin/env bash
# The benchmarks that need the real homeserver: starts PostgreSQL and Synapse like
# scripts/test.sh, then runs the bridge benchmark (arguments go to it). The pure and devnet
# benchmarks run without this: .venv/bin/python -m bench.bench_one_to_one (etc.).
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

log "running the bridge benchmark"
"$VENV/bin/python" -m bench.bench_bridge "$@"

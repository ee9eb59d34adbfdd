#!/usr/bin/env bash
# The benchmarks that need the real homeserver: starts PostgreSQL and Synapse like
# scripts/test.sh, then runs the pace benchmark (bench/bench_pace.py: the bridge as its own
# process on PostgreSQL and SQLite, the devnet in another; arguments go to it). With
# SMB_BENCH=bench_bridge it runs that one instead (the in-process bridge: memory with 100
# portals, requests per poll cycle). The pure and devnet benchmarks run without this:
# .venv/bin/python -m bench.bench_one_to_one (etc.).
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

BENCH=${SMB_BENCH:-bench_pace}
log "running bench.$BENCH"
"$VENV/bin/python" -m "bench.$BENCH" "$@"

#!/usr/bin/env bash
# Install and run the bridge: creates the virtualenv, installs the bridge, writes config.yaml
# and registration.yaml on first run, then starts the bridge (SQLite by default).
#
#   bash scripts/run.sh              # uses ./config.yaml and ./registration.yaml
#   bash scripts/run.sh my.yaml      # another config file
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=${1:-config.yaml}
REGISTRATION=${REGISTRATION:-registration.yaml}
VENV=${BRIDGE_VENV:-$ROOT/.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtualenv in $VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT"

if [ ! -f "$CONFIG" ]; then
    "$VENV/bin/python" -m bridge -c "$CONFIG" || true   # creates it from the example
fi
if [ ! -f "$REGISTRATION" ] || [ "$CONFIG" -nt "$REGISTRATION" ]; then
    # New or edited config: (re)write the registration with fresh tokens.
    "$VENV/bin/python" -m bridge -c "$CONFIG" -g -r "$REGISTRATION"
fi
set +e
"$VENV/bin/python" -m bridge -c "$CONFIG"
rc=$?
if [ $rc -eq 4 ]; then
    echo "Edit $CONFIG (homeserver address and domain, bridge.permissions), then run this again."
elif [ $rc -eq 7 ]; then
    echo "Add $REGISTRATION to app_service_config_files in homeserver.yaml, restart the homeserver, then run this again."
fi
exit $rc

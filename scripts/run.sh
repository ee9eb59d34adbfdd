#!/usr/bin/env bash
# Install and run the bridge: creates the virtualenv and installs the bridge (only when the
# virtualenv is new or pyproject.toml/constraints.txt changed), writes config.yaml on the first
# run and registration.yaml once config.yaml is edited (again only when the config changes what
# is in it, and then stops: the homeserver must be restarted to read it), then starts the
# bridge (SQLite by default).
#
#   bash scripts/run.sh              # uses ./config.yaml and ./registration.yaml
#   bash scripts/run.sh my.yaml      # another config file
#
# Environment: SMB_VENV (default .venv), REGISTRATION (default registration.yaml).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=${1:-config.yaml}
REGISTRATION=${REGISTRATION:-registration.yaml}
VENV=${SMB_VENV:-$ROOT/.venv}

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
install_project run -e "$ROOT"

if [ ! -f "$CONFIG" ]; then
    "$VENV/bin/python" -m bridge -c "$CONFIG" || true   # creates it from the example
fi
registration_hash() { sha256sum "$REGISTRATION" 2>/dev/null || true; }
# -g writes the registration only once the config's placeholders are replaced (else exit 4),
# keeps the tokens the config already has, and rewrites the file only when something in it
# changed (domain, addresses, names): other edits leave it, and the homeserver, alone.
before=$(registration_hash)
set +e
"$VENV/bin/python" -m bridge -c "$CONFIG" -g -r "$REGISTRATION"
rc=$?
set -e
if [ $rc -eq 4 ]; then
    echo "Edit $CONFIG (homeserver address and domain, bridge.permissions), then run this again."
    exit $rc
elif [ $rc -ne 0 ]; then
    exit $rc
fi
if [ "$(registration_hash)" != "$before" ]; then
    echo "$REGISTRATION is new or changed and the homeserver reads it only when it starts:" \
        "list it in app_service_config_files in homeserver.yaml (once), restart the" \
        "homeserver, then run this again to start the bridge."
    exit 0
fi
set +e
"$VENV/bin/python" -m bridge -c "$CONFIG"
rc=$?
if [ $rc -eq 7 ]; then
    echo "The homeserver does not know the bridge's as_token: list $REGISTRATION in" \
        "app_service_config_files in homeserver.yaml, restart the homeserver, then run this again."
fi
exit $rc

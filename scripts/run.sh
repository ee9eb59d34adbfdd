#!/usr/bin/env bash
# Install and run the bridge: creates the virtualenv and installs the bridge (only when the
# virtualenv is new or pyproject.toml/constraints.txt changed), writes config.yaml and
# registration.yaml on first run, then starts the bridge (SQLite by default).
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
registration_matches_config() {
    # The registration is what the config makes of it (its sender_localpart is random).
    "$VENV/bin/python" - "$CONFIG" "$REGISTRATION" 2>/dev/null <<'EOF'
import sys
from pathlib import Path

import yaml

from bridge.config import load_config
from bridge.registration import make_registration

registration = yaml.safe_load(Path(sys.argv[2]).read_text())
expected = make_registration(load_config(Path(sys.argv[1])), registration["sender_localpart"])
sys.exit(0 if registration == expected else 1)
EOF
}
if [ ! -f "$REGISTRATION" ] || ! registration_matches_config; then
    # New config, or an edit the registration depends on (domain, addresses, tokens, names):
    # (re)write the registration with fresh tokens. Other edits, and the bridge upgrading the
    # file to a new config version, leave it alone.
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

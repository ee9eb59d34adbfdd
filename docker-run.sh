#!/bin/sh
# Container entrypoint: first start writes /data/config.yaml and /data/registration.yaml and
# stops so they can be edited; later starts migrate the database and run the bridge.
set -eu
CONFIG=/data/config.yaml
REGISTRATION=/data/registration.yaml

if [ ! -f "$CONFIG" ]; then
    python -m bridge -c "$CONFIG" || true
    sed -i 's|hostname: 127.0.0.1|hostname: 0.0.0.0|' "$CONFIG"
    python -m bridge -c "$CONFIG" -g -r "$REGISTRATION"
    echo "Wrote $CONFIG and $REGISTRATION. Edit the config (homeserver address and domain,"
    echo "appservice.address, bridge.permissions), run again with -g if you changed the domain"
    echo "or address (docker run ... session-bridge -g), add the registration to the homeserver,"
    echo "and start the container again."
    exit 0
fi
if [ "${1:-}" = "-g" ]; then
    exec python -m bridge -c "$CONFIG" -g -r "$REGISTRATION"
fi
python -m bridge -c "$CONFIG" --migrate-only
exec python -m bridge -c "$CONFIG" "$@"

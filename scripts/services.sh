#!/usr/bin/env bash
# Shared by scripts/test.sh and scripts/bench.sh (sourced, not run): a throw-away PostgreSQL
# and a throw-away Synapse on loopback, and the bridge's own config and registration. Exports
# SMB_TEST_POSTGRES_URL, SMB_TEST_CONFIG, SMB_TEST_SYNAPSE_URL and SMB_TEST_SHARED_SECRET; the
# EXIT trap stops what it started. Expects ROOT and VENV to be set, and the project with its
# test dependencies installed in VENV (scripts/venv.sh: install_project test -e "$ROOT[test]").

log() { printf '[services] %s\n' "$*" >&2; }

# --- work directory and cleanup ------------------------------------------------------------
WORK=$(mktemp -d /tmp/bridge-test.XXXXXX)
chmod 755 "$WORK"
PG_DATA="$WORK/pg/data"
PG_CTL=""
AS_PG=()
SYNAPSE_PID=""

cleanup() {
    local rc=$?
    if [ -n "$SYNAPSE_PID" ] && kill -0 "$SYNAPSE_PID" 2>/dev/null; then
        log "stopping Synapse"
        kill "$SYNAPSE_PID" 2>/dev/null || true
        wait "$SYNAPSE_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_CTL" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        log "stopping PostgreSQL"
        "${AS_PG[@]}" "$PG_CTL" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ "${SMB_TEST_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url seconds
    local url=$1 deadline=$((SECONDS + $2))
    until "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then return 1; fi
        sleep 0.2
    done
}

# --- PostgreSQL ----------------------------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PG_BIN" ] && [ "$(id -u)" = 0 ]; then
    log "installing PostgreSQL from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
[ -n "$PG_BIN" ] || { log "PostgreSQL server binaries not found (apt-get install postgresql)"; exit 1; }
PG_CTL="$PG_BIN/pg_ctl"
mkdir -p "$WORK/pg"
if [ "$(id -u)" = 0 ]; then
    # The server refuses to run as root: run it as the postgres user on a directory it owns.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$WORK/pg"
    AS_PG=(runuser -u postgres --)
fi
PG_PORT=$(free_port)
log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync >"$WORK/pg/initdb.log" 2>&1 \
    || { cat "$WORK/pg/initdb.log" >&2; exit 1; }
"${AS_PG[@]}" "$PG_CTL" -D "$PG_DATA" -l "$WORK/pg/server.log" -w -t 60 start \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" >/dev/null \
    || { cat "$WORK/pg/server.log" >&2; exit 1; }
export SMB_TEST_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/postgres"

# --- the bridge's config and registration, made by the bridge itself ------------------------
SYNAPSE_PORT=$(free_port)
AS_PORT=$(free_port)
AS_CONFIG="$WORK/bridge/config.yaml"
mkdir -p "$WORK/bridge"
"$VENV/bin/python" -m bridge -c "$AS_CONFIG" 2>/dev/null && { log "expected the config to be created"; exit 1; } || true
[ -f "$AS_CONFIG" ] || { log "python -m bridge did not create $AS_CONFIG"; exit 1; }
"$VENV/bin/python" - "$AS_CONFIG" "$SYNAPSE_PORT" "$AS_PORT" <<'EOF'
import sys
from pathlib import Path
from bridge.config_file import update_values
path, hs_port, as_port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
update_values(path, {
    ("homeserver", "address"): f"http://127.0.0.1:{hs_port}",
    ("homeserver", "domain"): "localhost",
    ("appservice", "address"): f"http://127.0.0.1:{as_port}",
    ("appservice", "port"): as_port,
    ("bridge", "permissions"): {"localhost": "user", "@admin:localhost": "admin"},
    # The devnet's community servers run on loopback: the operator lists that host.
    ("session", "internal_hosts"): ["127.0.0.1"],
})
EOF
"$VENV/bin/python" -m bridge -c "$AS_CONFIG" -g -r "$WORK/bridge/registration.yaml" >/dev/null
export SMB_TEST_CONFIG="$AS_CONFIG"

# --- Synapse -------------------------------------------------------------------------------
SYN="$WORK/synapse"
mkdir -p "$SYN"
log "generating the Synapse config"
(cd "$SYN" && "$VENV/bin/python" -m synapse.app.homeserver -H localhost -c "$SYN/homeserver.yaml" \
    --generate-config --report-stats=no >/dev/null)
SHARED_SECRET=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(16))')
cat >>"$SYN/homeserver.yaml" <<EOF
# --- overrides for the bridge's tests ---
listeners:
  - {port: $SYNAPSE_PORT, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{names: [client], compress: false}]}
database: {name: sqlite3, args: {database: $SYN/homeserver.db}}
app_service_config_files: [$WORK/bridge/registration.yaml]
registration_shared_secret: "$SHARED_SECRET"
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
rc_message: &fast {per_second: 1000, burst_count: 1000}
rc_registration: *fast
rc_login: {address: *fast, account: *fast, failed_attempts: *fast}
rc_joins: {local: *fast, remote: *fast}
rc_joins_per_room: *fast
rc_invites: {per_room: *fast, per_user: *fast, per_issuer: *fast}
rc_room_creation: *fast
# end-to-bridge encryption: to-device messages, device lists and OTK counts in transactions
experimental_features: {msc2409_to_device_messages_enabled: true, msc3202_transaction_extensions: true}
EOF
log "starting Synapse on 127.0.0.1:$SYNAPSE_PORT"
(cd "$SYN" && exec "$VENV/bin/python" -m synapse.app.homeserver -c "$SYN/homeserver.yaml") \
    >"$SYN/stdout.log" 2>&1 &
SYNAPSE_PID=$!
if ! wait_http "http://127.0.0.1:$SYNAPSE_PORT/health" 120; then
    log "Synapse did not start; its log follows"
    tail -n 50 "$SYN/homeserver.log" "$SYN/stdout.log" >&2 || true
    exit 1
fi
export SMB_TEST_SYNAPSE_URL="http://127.0.0.1:$SYNAPSE_PORT"
export SMB_TEST_SHARED_SECRET="$SHARED_SECRET"


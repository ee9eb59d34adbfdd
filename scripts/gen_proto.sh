#!/usr/bin/env bash
# Regenerate bridge/session/proto/SessionProtos_pb2.py (+ .pyi) from SessionProtos.proto with the
# protoc bundled in grpcio-tools, so the generated code matches the installed protobuf runtime.
# Run from anywhere: scripts/gen_proto.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

cd "$ROOT"
# -I is the repository root, so the descriptor is registered under its unique path
# "bridge/session/proto/SessionProtos.proto" and cannot clash with other Session protos
# (e.g. session-python's signalservice.proto) in the default descriptor pool.
"$PYTHON" -m grpc_tools.protoc \
    -I . \
    --python_out=. \
    --pyi_out=. \
    bridge/session/proto/SessionProtos.proto
echo "generated bridge/session/proto/SessionProtos_pb2.py and .pyi"

#!/usr/bin/env bash
# Sourced by scripts/run.sh, scripts/test.sh and scripts/bench.sh: the virtualenv $VENV with the
# project installed (editable) at the versions pinned in constraints.txt. Expects ROOT and VENV;
# PY (default python3) creates the virtualenv.
#
#   install_project NAME PIP_ARGUMENTS...
#
# installs only when the virtualenv is new, or pyproject.toml, constraints.txt or the arguments
# changed since the last install of NAME (a stamp file in the virtualenv remembers their hash).

install_project() {
    local name=$1
    shift
    local stamp="$VENV/.smb-installed-$name"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating the virtualenv $VENV" >&2
        "${PY:-python3}" -m venv "$VENV"
    fi
    local want
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1) $*"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "installing $* into $VENV (constraints.txt)" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -c "$ROOT/constraints.txt" "$@"
    printf '%s\n' "$want" >"$stamp"
}

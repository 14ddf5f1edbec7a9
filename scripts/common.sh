# shellcheck shell=bash
# Shared by run.sh and test.sh: the virtualenv and system packages, installed only when missing.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python

log() { printf '\033[1;35m==>\033[0m %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

ensure_venv() {
    if [ ! -x "$PY" ]; then
        log "creating virtualenv in $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha"
    local want
    want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing requirements.txt"
        "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
        echo "$want" > "$stamp"
    fi
}

# ensure_apt BINARY PACKAGE [BINARY PACKAGE ...]: apt-get install the packages whose binary is missing.
ensure_apt() {
    local missing=()
    while [ $# -gt 1 ]; do
        [ -e "$1" ] || command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        log "missing system packages: ${missing[*]} (run as root, or install them)"
        return 1
    fi
    log "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_free PORT: nothing listens on 127.0.0.1:PORT. SO_REUSEADDR as servers set it, so that a
# port whose last connections linger in TIME_WAIT still counts as free.
port_free() {
    "$PY" - "$1" 2>/dev/null <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
PY
}

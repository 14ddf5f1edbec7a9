#!/usr/bin/env bash
# `make run`: install, migrate, seed, then run in the foreground everything the console needs:
# the ASGI server (HTTP + websockets), a Celery worker and Celery beat. Ctrl-C stops all of it.
# Embedded defaults (SQLite, filesystem broker, in-memory channel layer, console e-mail) unless
# DATABASE_URL / REDIS_URL are set. Logs go to $DATA_DIR/logs/ as well as to this terminal.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_apt bwrap bubblewrap || log "bubblewrap missing: pods will run as plain processes"
ensure_venv

export DEBUG=${DEBUG:-1}
export PORT=${PORT:-8000}
export HOST=${HOST:-127.0.0.1}
export DATA_DIR=${DATA_DIR:-$ROOT/var}
export SITE_URL=${SITE_URL:-http://localhost:$PORT}
mkdir -p "$DATA_DIR/logs"

log "migrating the database"
"$PY" manage.py migrate --noinput -v 0
log "seeding the catalogue and the demo login"
"$PY" manage.py seed

children=()
cleanup() {
    trap - INT TERM EXIT
    log "stopping"
    for pid in "${children[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# start NAME COMMAND...: run in the background, prefix its output, and keep a log file.
start() {
    local name=$1
    shift
    "$@" > >(tee -a "$DATA_DIR/logs/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
    children+=($!)
}

# Without real Stripe keys, run the local Stripe emulator and point the console at it.
if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
    STRIPE_EMULATOR_PORT=${STRIPE_EMULATOR_PORT:-$(free_port)}
    export STRIPE_API_BASE=${STRIPE_API_BASE:-http://127.0.0.1:$STRIPE_EMULATOR_PORT}
    start stripe "$PY" manage.py stripe_emulator --port "$STRIPE_EMULATOR_PORT"
fi

start web "$VENV/bin/daphne" -b "$HOST" -p "$PORT" console.asgi:application
start worker "$VENV/bin/celery" -A console worker --pool=solo --concurrency=1 -l INFO
start beat "$VENV/bin/celery" -A console beat -l INFO -s "$DATA_DIR/celerybeat-schedule"

log "console: $SITE_URL  (Ctrl-C stops everything)"
wait -n

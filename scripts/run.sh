#!/usr/bin/env bash
# `make run`: install, start PostgreSQL and Redis under DATA_DIR (unless DATABASE_URL / REDIS_URL
# name others), migrate, seed, then run in the foreground everything the console needs: the
# ASGI server (HTTP + websockets), a Celery worker, Celery beat and, without real Stripe keys,
# the Stripe emulator. Ctrl-C, or any of them exiting, stops all of it, the services last.
# Logs go to $DATA_DIR/logs/ as well as to this terminal.
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/services.sh"
cd "$ROOT"

export DEBUG=${DEBUG:-1}
export PORT=${PORT:-8000}
export HOST=${HOST:-127.0.0.1}
export DATA_DIR=${DATA_DIR:-$ROOT/var}
export SITE_URL=${SITE_URL:-http://localhost:$PORT}
# The pod proxy's own origin: http://<pod>-<port>.localhost:$PORT/ needs no DNS in browsers.
export PROXY_DOMAIN=${PROXY_DOMAIN:-localhost}
mkdir -p "$DATA_DIR/logs"
DATA_DIR=$(cd "$DATA_DIR" && pwd)

# The process runtime's binaries (pods/runtime/sandbox.py: its sandbox, network and the python
# pods run, with venv for serverless workers' dependencies), and the services when no URL names
# outside ones.
packages=(/usr/bin/bwrap bubblewrap /usr/bin/slirp4netns slirp4netns /usr/bin/nsenter util-linux
    /usr/bin/setpriv util-linux /usr/bin/python3 python3
    /usr/lib/python3.11/ensurepip python3-venv)
[ -n "${DATABASE_URL:-}" ] || packages+=(/usr/lib/postgresql/15/bin/initdb postgresql)
[ -n "${REDIS_URL:-}" ] || packages+=(redis-server redis-server)
ensure_apt "${packages[@]}" || die "install the packages above (make run as root installs them)"
ensure_venv

# One run per DATA_DIR. Fd 9 holds the lock; every child gets it closed (9>&-), so that a
# service outliving a killed run cannot keep the next one out.
exec 9>"$DATA_DIR/run.lock"
flock -n 9 || die "another make run is using $DATA_DIR"

children=()
cleanup() {
    trap - INT TERM EXIT
    log "stopping"
    local pid
    for pid in "${children[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${children[@]}"; do
        wait_gone "$pid" 150 || kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    stop_embedded
    log "stopped"
}
trap cleanup INT TERM EXIT

start_embedded

log "migrating the database"
"$PY" manage.py migrate --noinput -v 0 9>&-
log "seeding the catalogue and the demo login"
"$PY" manage.py seed 9>&-

# start NAME COMMAND...: run in the background, prefix its output, and keep a log file. The
# log writers ignore Ctrl-C so that they record the shutdown, then end with their process.
start() {
    local name=$1
    shift
    "$@" > >(
        trap '' INT
        tee -a "$DATA_DIR/logs/$name.log" | sed -u "s/^/[$name] /"
    ) 2>&1 9>&- &
    children+=($!)
}

# Without real Stripe keys, run the local Stripe emulator and point the console at it.
if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
    STRIPE_EMULATOR_PORT=${STRIPE_EMULATOR_PORT:-$(free_port)}
    export STRIPE_API_BASE=${STRIPE_API_BASE:-http://127.0.0.1:$STRIPE_EMULATOR_PORT}
    start stripe "$PY" manage.py stripe_emulator --port "$STRIPE_EMULATOR_PORT"
fi

# daphne serves pages as well as websockets: one port for everything, as a demo wants. Its
# threads share a pool of connections (persistent ones per thread exhausted PostgreSQL).
start web env DATABASE_POOL_SIZE="${DATABASE_POOL_SIZE:-10}" \
    "$VENV/bin/daphne" -b "$HOST" -p "$PORT" console.asgi:application
# The worker gateway (serverless/gateway.py): serverless worker pods reach the worker protocol,
# and nothing else of the console, through this socket, mounted into their sandboxes.
gateway_socket="$DATA_DIR/run/worker-gateway/gateway.sock"
mkdir -p "$(dirname "$gateway_socket")"
chmod 711 "$DATA_DIR/run" "$(dirname "$gateway_socket")"
rm -f "$gateway_socket"  # a killed run's socket would refuse the bind
start gateway env DATABASE_POOL_SIZE="${DATABASE_POOL_SIZE:-10}" \
    "$VENV/bin/daphne" -u "$gateway_socket" serverless.worker_asgi:application
# One worker: no neighbours to synchronise with or gossip to (each costs start-up and shutdown).
start worker "$VENV/bin/celery" -A console worker --pool=solo --concurrency=1 -l INFO \
    --without-mingle --without-gossip
start beat "$VENV/bin/celery" -A console beat -l INFO -s "$DATA_DIR/celerybeat-schedule"

log "console: $SITE_URL  (Ctrl-C stops everything)"
wait -n

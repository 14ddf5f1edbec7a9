#!/usr/bin/env bash
# Run a benchmark script against a throwaway PostgreSQL and Redis: ./scripts/bench.sh bench/X.py
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/services.sh"
cd "$ROOT"
ensure_venv
trap stop_services EXIT
start_services
export SECRET_KEY=bench DATA_DIR="$SERVICES_DIR/data"
mkdir -p "$DATA_DIR"
"$PY" "$@"

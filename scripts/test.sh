#!/usr/bin/env bash
# `make test`: install what the tests need, start throwaway PostgreSQL and Redis, lint, run the
# suite, then the browser tests in their own pytest process, stop the services, exit non-zero
# on any failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/services.sh"
source "$ROOT/scripts/podman.sh"
cd "$ROOT"

# Every system binary the code or the tests execute, by the package that brings it: a fresh
# machine has none of these, and one installed by hand hides the gap (catatonit did).
ensure_apt /usr/lib/postgresql/15/bin/initdb postgresql redis-server redis-server \
    /usr/bin/chromium chromium bwrap bubblewrap slirp4netns slirp4netns \
    podman podman runc runc /usr/libexec/podman/catatonit catatonit /bin/busybox busybox-static \
    /usr/sbin/iptables iptables \
    ssh-keygen openssh-client ip iproute2 nsenter util-linux setpriv util-linux \
    /usr/bin/python3 python3 /usr/lib/python3.11/ensurepip python3-venv \
    /usr/share/fonts/truetype/dejavu fonts-dejavu-core
ensure_venv

log "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

trap 'stop_podman; stop_services' EXIT
start_services
start_podman  # Podman's Docker API for the docker runtime's tests: exports PODMAN_URL

export SECRET_KEY=test-secret DEBUG=0 SECURE_COOKIES=0 DATA_DIR="$SERVICES_DIR/data"
export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$ROOT/test-artifacts}
mkdir -p "$DATA_DIR" "$ARTIFACTS_DIR"

log "test suite (PostgreSQL + Redis)"
suite=0
"$PY" -m pytest -m "not e2e" "$@" || suite=$?

log "browser tests (headless Chromium)"
export DJANGO_ALLOW_ASYNC_UNSAFE=true
browser=0
"$PY" -m pytest -m e2e tests/e2e "$@" || browser=$?
# pytest exits 5 when it collects nothing (e.g. a -k that matches no browser test).
[ "$browser" = 5 ] && browser=0
log "suite exit $suite, browser tests exit $browser"
[ "$suite" = 0 ] && [ "$browser" = 0 ]

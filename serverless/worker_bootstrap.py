"""What runs in a worker pod before the template's start command (serverless.gateway's
worker_command): the gateway forwarder, then the Python dependencies from a cache.

1. When the worker's RUNPOD_WEBHOOK_* URLs point at the gateway (http://127.0.0.1:<port>/,
   a pod with a network namespace of its own), FORWARDER listens there and relays each
   connection to the gateway socket mounted at WORKER_GATEWAY_TARGET. It runs as the pod's
   root, inside the sandbox, and can reach nothing the pod could not: only that socket.
2. A virtualenv holding RUNPOD_REQUIREMENT and the handler's own requirements
   (WORKER_REQUIREMENTS, default ./requirements.txt in the working directory, which is the
   network volume's mount path when the endpoint has one), installed with pip from the package
   registry into WORKER_CACHE_DIR (default ./.worker-cache: the network volume, else the pod's
   volume or container disk) under a key hashed from the Python version and the requirement
   lines. The next worker (or restart) with the same set finds it ready and only prints
   "dependencies cached". A lock file serialises workers installing the same set at once.
   An image that already has the runpod package and no requirements file skips this step.
3. Old virtualenvs are pruned (PRUNE): a worker holds a shared lock on its venv's `.inuse`
   file for as long as it runs (fd 9, inherited by the start command), touches `.ready` when
   it starts with it, and then deletes the other venvs whose `.ready` (or, never finished,
   the venv itself) is older than WORKER_CACHE_KEEP_DAYS (7) days, each only while it can take
   both that venv's install lock and its `.inuse` lock exclusively (no worker installing or
   running it). `.ready` goes first, so a worker that waited on `.inuse` meanwhile installs
   afresh instead of running a half-deleted venv. The small lock files stay: deleting a lock
   file another worker holds open would let a third lock a new one.
"""

from __future__ import annotations

import shlex

from pods.runtime.base import WORKER_GATEWAY_SOCKET, WORKER_GATEWAY_TARGET

RUNPOD_REQUIREMENT = "runpod==1.12.0"
INSTALLED_MARKER = "[worker] installing"
CACHED_MARKER = "[worker] dependencies cached"
PRUNED_MARKER = "[worker] removed the unused cache"

# asyncio relay, stdlib only (the pod's python3 runs it with -I -S). Half-closes are passed on,
# so a held long-poll or a streamed answer is never cut short.
FORWARDER = """
import asyncio, sys
SOCKET, PORT, READY = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
async def relay(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(SOCKET)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    for end in (writer, up_writer):
        end.close()
async def main():
    server = await asyncio.start_server(relay, "127.0.0.1", PORT)
    open(READY, "w").close()
    await server.serve_forever()
asyncio.run(main())
"""

FORWARD = r"""set -e
case "${RUNPOD_WEBHOOK_PING:-}" in
  "http://127.0.0.1:__PORT__/"*)
    python3 -I -S -c __FORWARDER__ __SOCKET__ __PORT__ /tmp/.gateway-ready &
    tries=0
    while [ ! -e /tmp/.gateway-ready ] && [ "$tries" -lt 200 ]; do
      sleep 0.05
      tries=$((tries+1))
    done
    if [ ! -e /tmp/.gateway-ready ]; then
      echo "[worker] the gateway forwarder did not start" >&2
      exit 1
    fi
    ;;
esac"""

DEPENDENCIES = r"""requirements="${WORKER_REQUIREMENTS:-requirements.txt}"
if [ -n "${WORKER_REQUIREMENTS:-}" ] && [ ! -f "$requirements" ]; then
  echo "[worker] WORKER_REQUIREMENTS names $requirements, which does not exist" >&2; exit 1
fi
[ -f "$requirements" ] || requirements=/dev/null
if [ "$requirements" != /dev/null ] || ! python3 -c 'import runpod' 2>/dev/null; then
  cache="${WORKER_CACHE_DIR:-$PWD/.worker-cache}"
  key=$({ python3 -VV; echo __RUNPOD__; cat "$requirements"; } | sha256sum | cut -c1-16)
  venv="$cache/venv-$key"
  mkdir -p "$cache"
  exec 9>>"$venv.inuse"
  flock -s 9
  if [ -e "$venv/.ready" ]; then
    echo "__CACHED__ in $venv"
    touch "$venv/.ready"
  else
    exec 8>"$venv.lock"
    flock 8
    if [ -e "$venv/.ready" ]; then
      echo "__CACHED__ in $venv (installed by another worker meanwhile)"
    else
      echo "__INSTALLED__ __RUNPOD__ and $requirements into $venv"
      started=$(date +%s)
      rm -rf "$venv"
      python3 -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --no-input --no-cache-dir \
        --disable-pip-version-check __RUNPOD__ -r "$requirements"
      touch "$venv/.ready"
      echo "[worker] installed in $(( $(date +%s) - started )) s"
    fi
    exec 8>&-
  fi
__PRUNE__
  export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
fi"""

PRUNE = r"""  keep_minutes=$(( ${WORKER_CACHE_KEEP_DAYS:-7} * 1440 ))
  exec 7>"$cache/.prune.lock"
  if flock -n 7; then
    for old in "$cache"/venv-*/; do
      old="${old%/}"
      [ -d "$old" ] && [ "$old" != "$venv" ] || continue
      stamp="$old/.ready"
      [ -e "$stamp" ] || stamp="$old"
      [ -n "$(find "$stamp" -maxdepth 0 -mmin +"$keep_minutes" 2>/dev/null)" ] || continue
      (
        flock -n 8 || exit 0
        flock -n -x 9 || exit 0
        rm -f "$old/.ready" && rm -rf "$old" && echo "__PRUNED__ $old"
      ) 8>"$old.lock" 9>>"$old.inuse" || true
    done
  fi
  exec 7>&-"""


def _fill(script: str, gateway_port: int) -> str:
    values = {
        "__FORWARDER__": shlex.quote(FORWARDER),
        "__SOCKET__": shlex.quote(f"{WORKER_GATEWAY_TARGET}/{WORKER_GATEWAY_SOCKET}"),
        "__PORT__": str(gateway_port),
        "__RUNPOD__": shlex.quote(RUNPOD_REQUIREMENT),
        "__CACHED__": CACHED_MARKER,
        "__INSTALLED__": INSTALLED_MARKER,
        "__PRUNED__": PRUNED_MARKER,
    }
    for name, value in values.items():
        script = script.replace(name, value)
    return script


def forwarder_script(*, gateway_port: int) -> str:
    """Step 1 alone: the gateway forwarder, started in the background when the worker's URLs
    point at it."""
    return _fill(FORWARD, gateway_port)


def bootstrap_script(*, gateway_port: int) -> str:
    """Steps 1 to 3; the caller appends the exec of the start command."""
    return _fill(FORWARD + "\n" + DEPENDENCIES.replace("__PRUNE__", PRUNE), gateway_port)

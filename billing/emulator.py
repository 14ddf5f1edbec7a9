"""Run localstripe (the local Stripe emulator, a GPL tool installed from PyPI, not vendored)
for development and tests, and register our webhook with it.

`python -m billing.emulator --port 8420 --state var/localstripe.pickle` runs the emulator
with its state in a file of ours (localstripe itself always uses /tmp/localstripe.pickle,
which other checkouts on the machine would share). `manage.py stripe_emulator` wraps this.
"""

import argparse
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from aiohttp import web


def command(port: int, state: Path | None) -> list[str]:
    args = [sys.executable, "-m", "billing.emulator", "--port", str(port)]
    if state is not None:
        args += ["--state", str(state)]
    return args


def start(port: int, *, state: Path | None = None, log=subprocess.DEVNULL, cwd=None):
    """Start the emulator as a child process (caller stops it)."""
    return subprocess.Popen(command(port, state), stdout=log, stderr=subprocess.STDOUT, cwd=cwd)


def wait_until_up(base_url: str, timeout: float = 20.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"localstripe exited with code {process.returncode}")
        try:
            requests.get(f"{base_url}/js.stripe.com/v3/", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"localstripe did not start at {base_url}")


def register_webhook(base_url: str, *, url: str, secret: str, name: str = "console") -> None:
    response = requests.post(
        f"{base_url}/_config/webhooks/{name}", data={"url": url, "secret": secret}, timeout=5
    )
    response.raise_for_status()


STAND_IN_PATH = "/js.stripe.com/v3/"


def scoped_stand_in(source: str) -> str:
    """localstripe's Stripe.js stand-in declares `class Element` at the top level of a classic
    script, which shadows window.Element for every script on the page (Bootstrap's
    `Element.prototype.matches` then throws on each event). Inside a function scope only its
    `Stripe` global (an undeclared assignment) reaches the page, as with the real Stripe.js."""
    return "(function () {\n" + source + "\n})();\n"


def _stand_in_middleware(server):
    script = scoped_stand_in((Path(server.__file__).parent / "localstripe-v3.js").read_text())

    @web.middleware
    async def serve_scoped_stand_in(request, handler):
        if request.path == STAND_IN_PATH:
            return web.Response(text=script, content_type="application/javascript")
        return await handler(request)

    return serve_scoped_stand_in


def _serve(port: int, state: Path | None) -> None:
    from localstripe import resources, server

    def load(store) -> None:
        if state is not None and state.exists():
            with state.open("rb") as handle:
                store.update(pickle.load(handle))  # noqa: S301 - our own state file

    def dump(store) -> None:
        if state is not None:
            with state.open("wb") as handle:
                pickle.dump(dict(store), handle, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump
    resources.store.try_load_from_disk()
    # localstripe's own start() listens on every interface ("::"), where pods (whose outbound
    # traffic leaves through the host's stack) and the network could reach it: loopback only.
    server.app.middlewares.insert(0, _stand_in_middleware(server))
    sock = socket.create_server(("127.0.0.1", port), reuse_port=False)
    web.run_app(server.app, sock=sock, access_log=None, print=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", type=Path, default=None, help="keep state in this file")
    options = parser.parse_args()
    _serve(options.port, options.state)

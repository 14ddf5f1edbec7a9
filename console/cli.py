"""podctl: the everyday pod verbs from a shell, over the REST API at /api/v1/ (runpodctl's verbs
and flag names).

    podctl config --apiKey rpa_... [--url http://127.0.0.1:8000]
    podctl create pods --name train --gpuType "NVIDIA A40" --imageName python:3.11-slim
    podctl get pod [ID] [--json]      podctl get gpus [--json]
    podctl start|stop|remove pod ID

The key and URL come from PODCTL_API_KEY / PODCTL_API_URL, else from the config file written
by `podctl config` (~/.config/podctl/config.json, mode 0600 in a 0700 directory).

Exit codes a script can rely on: 0 done; 1 the server refused (its message on stderr); 2 bad
usage; 3 not configured, or the key was refused; 4 the server could not be reached. Only the
standard library is used, so the CLI runs wherever Python 3.11 does."""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from pathlib import Path

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 60
MAX_PAGES = 50  # 50 pages of 200 pods: a bound, so a looping `next` link cannot hang us
MAX_POD_COUNT = 20


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_API) -> None:
        super().__init__(message)
        self.code = code


def printable(value: object) -> str:
    """Text from the server (pod names, messages) without control characters: anything a pod
    or another member wrote must not drive the user's terminal (escape sequences)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


# Configuration --------------------------------------------------------------------------------


def config_path() -> Path:
    return Path.home() / ".config" / "podctl" / "config.json"


def read_config() -> dict:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}", EXIT_AUTH) from error
    return data if isinstance(data, dict) else {}


def write_config(values: dict) -> Path:
    """Merge into the config file, created 0600 in a 0700 directory (it holds a secret)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    data = {**read_config(), **values}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it anyway
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    return path


def checked_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"the URL must be http:// or https://, not {url!r}", EXIT_USAGE)
    return url.rstrip("/")


def settings() -> tuple[str, str]:
    """(URL, key): the environment first, then the config file."""
    stored = read_config()
    key = os.environ.get("PODCTL_API_KEY") or stored.get("apiKey")
    url = os.environ.get("PODCTL_API_URL") or stored.get("url") or DEFAULT_URL
    if not key:
        raise CliError(
            "no API key: run `podctl config --apiKey KEY` or set PODCTL_API_KEY", EXIT_AUTH
        )
    return checked_url(url), key


# HTTP -----------------------------------------------------------------------------------------


def error_message(status: int, body: bytes) -> str:
    """The server's envelope ({"code", "message", "errors"}) as lines for stderr."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status} from the server (not the console's API: check the URL)"
    if not isinstance(data, dict) or "message" not in data:
        return f"HTTP {status}: {printable(data)}"
    lines = [printable(data["message"])]
    for field, messages in (data.get("errors") or {}).items():
        for message in messages if isinstance(messages, list) else [messages]:
            if printable(message) != lines[0]:
                lines.append(f"  {printable(field)}: {printable(message)}")
    return "\n".join(lines)


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect with the Authorization header, to any host: the key goes
    only to the configured URL, and a redirect is reported instead (an HTTPError 3xx)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirects)


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def call(self, method: str, path: str, body: dict | None = None):
        # self.url is http(s) (checked_url), and every path is ours: no file:// or other scheme.
        request = urllib.request.Request(  # noqa: S310
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.key}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "podctl",
            },
        )
        try:
            with OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:
                target = printable(error.headers.get("Location", ""))
                raise CliError(f"the server redirects to {target!r}: give that as --url") from error
            code = EXIT_AUTH if error.code == 401 else EXIT_API
            raise CliError(error_message(error.code, error.read()), code) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CliError(f"cannot reach {self.url}: {reason}", EXIT_UNREACHABLE) from error
        try:
            return json.loads(raw) if raw else None
        except ValueError as error:
            raise CliError("the server did not answer JSON: is the URL the console's?") from error

    def all_pages(self, path: str) -> list:
        rows, page = [], self.call("GET", path)
        for _ in range(MAX_PAGES):
            rows.extend(page["results"])
            if not page.get("next"):
                return rows
            # Only the path of the `next` link: behind a proxy its scheme or host may differ
            # from the configured URL, and the key must go only where the user pointed it.
            link = urllib.parse.urlsplit(page["next"])
            page = self.call("GET", f"{link.path}?{link.query}")
        raise CliError(f"more than {MAX_PAGES} pages of results")


# Output ---------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[printable(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def money(value: object) -> str:
    """A decimal string as dollars without trailing zeros beyond the cents: 0.7900 -> 0.79."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return printable(value)
    if amount == amount.quantize(Decimal("0.01")):
        return str(amount.quantize(Decimal("0.01")))
    return format(amount.normalize(), "f")


def pod_gpu(pod: dict) -> str:
    if pod.get("gpu_type"):
        return f"{pod['gpu_count']} {pod['gpu_type']}"
    return pod.get("cpu_instance") or ""


def show(data, as_json: bool, render) -> None:
    print(json.dumps(data, indent=2) if as_json else render(data))


# Commands -------------------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    values = {}
    if args.apiKey is not None:
        values["apiKey"] = args.apiKey.strip()
    if args.url is not None:
        values["url"] = checked_url(args.url.strip())
    if not values:
        raise CliError("give --apiKey KEY and/or --url URL", EXIT_USAGE)
    print(f"saved {write_config(values)}")
    return EXIT_OK


def deploy_body(args: argparse.Namespace) -> dict:
    """runpodctl's flags as the REST API's deploy fields; unset flags are left out, so a
    template's values (and the wizard's defaults) apply."""
    given = {
        "name": args.name,
        "gpu_type": args.gpuType,
        "gpu_count": args.gpuCount,
        "image": args.imageName,
        "template": args.templateId,
        "container_disk_gb": args.containerDiskSize,
        "volume_gb": args.volumeSize,
        "volume_mount_path": args.volumePath,
        "data_center": args.dataCenterId,
        "network_volume": args.networkVolumeId,
        "start_command": args.args,
        "cloud_type": "community" if args.communityCloud else None,
    }
    body = {name: value for name, value in given.items() if value is not None}
    if args.env:
        body["env"] = [{"key": key, "value": value} for key, value in args.env]
    if args.ports is not None:
        body["http_ports"] = [port for port, kind in args.ports if kind == "http"]
        body["tcp_ports"] = [port for port, kind in args.ports if kind == "tcp"]
    return body


def cmd_create_pods(api: Api, args: argparse.Namespace) -> int:
    """Deploys one pod after another. If one is refused, the pods already created are still
    printed (then the error, exit 1), so a script learns every id it must clean up."""
    created: list[dict] = []
    try:
        for _ in range(args.podCount):
            pod = api.call("POST", "/api/v1/pods/", deploy_body(args))
            created.append(pod)
            if not args.json:
                print(
                    f'pod "{printable(pod["id"])}" created for ${money(pod["price_per_hour"])} / hr'
                )
    finally:
        if args.json:
            print(json.dumps(created, indent=2))
    return EXIT_OK


def pods_table(pods: list[dict]) -> str:
    rows = [[p["id"], p["name"], pod_gpu(p), p["image"], p["status"].upper()] for p in pods]
    return table(["ID", "NAME", "GPU", "IMAGE NAME", "STATUS"], rows)


def cmd_get_pod(api: Api, args: argparse.Namespace) -> int:
    if args.id:
        pod = api.call("GET", f"/api/v1/pods/{quoted(args.id)}/")
        show(pod, args.json, lambda pod: pods_table([pod]))
    else:
        show(api.all_pages("/api/v1/pods/?limit=200"), args.json, pods_table)
    return EXIT_OK


def gpus_table(gpus: list[dict]) -> str:
    rows = [
        [
            g["id"],
            g["display_name"],
            f"{g['memory_gb']} GB",
            money(g["secure_price"]),
            money(g["community_price"]),
            g["free"],
        ]
        for g in gpus
    ]
    return table(["GPU TYPE", "NAME", "MEMORY", "SECURE $/HR", "COMMUNITY $/HR", "FREE"], rows)


def cmd_get_gpus(api: Api, args: argparse.Namespace) -> int:
    show(api.call("GET", "/api/v1/gpu-types/"), args.json, gpus_table)
    return EXIT_OK


# podctl's verb -> (the API's action, what the line printed says).
POD_VERBS = {
    "start": ("start", "started"),
    "stop": ("stop", "stopped"),
    "remove": ("terminate", "removed"),
}


def quoted(pod_id: str) -> str:
    return urllib.parse.quote(pod_id, safe="")


def cmd_pod_verb(api: Api, args: argparse.Namespace) -> int:
    action, done = POD_VERBS[args.verb]
    pod = api.call("POST", f"/api/v1/pods/{quoted(args.id)}/{action}/")
    print(f'pod "{printable(pod["id"])}" {done}')
    return EXIT_OK


# Arguments ------------------------------------------------------------------------------------


def env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def port_list(text: str) -> list[tuple[int, str]]:
    """ "8888/http,22/tcp" -> [(8888, "http"), (22, "tcp")] (runpodctl's --ports)."""
    ports = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        number, sep, kind = item.partition("/")
        if not sep or kind.lower() not in ("http", "tcp") or not number.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected PORT/http or PORT/tcp, got {item!r}")
        ports.append((int(number), kind.lower()))
    return ports


def pod_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_POD_COUNT:
        raise argparse.ArgumentTypeError(f"a number from 1 to {MAX_POD_COUNT}")
    return int(text)


def add_create_pods(create: argparse._SubParsersAction) -> None:
    pods = create.add_parser("pods", aliases=["pod"], help="deploy pods")
    pods.add_argument("--name")
    pods.add_argument("--gpuType", help='a GPU type id, e.g. "NVIDIA A40" (podctl get gpus)')
    pods.add_argument("--gpuCount", type=int)
    pods.add_argument("--imageName")
    pods.add_argument("--templateId")
    pods.add_argument("--containerDiskSize", type=int, help="GB")
    pods.add_argument("--volumeSize", type=int, help="GB")
    pods.add_argument("--volumePath")
    pods.add_argument("--dataCenterId")
    pods.add_argument("--networkVolumeId")
    pods.add_argument("--ports", type=port_list, help='e.g. "8888/http,22/tcp"')
    pods.add_argument("--env", type=env_pair, action="append", help="KEY=VALUE, repeatable")
    pods.add_argument("--args", help="the container's start command")
    cloud = pods.add_mutually_exclusive_group()
    cloud.add_argument("--communityCloud", action="store_true")
    cloud.add_argument("--secureCloud", action="store_true")
    pods.add_argument("--podCount", type=pod_count, default=1)
    pods.add_argument("--json", action="store_true")
    pods.set_defaults(handler=cmd_create_pods)


def add_get(verbs: argparse._SubParsersAction) -> None:
    get = verbs.add_parser("get", help="show pods or GPU types").add_subparsers(
        dest="what", required=True
    )
    pod = get.add_parser("pod", aliases=["pods"], help="your team's pods, or one")
    pod.add_argument("id", nargs="?")
    pod.add_argument("--json", action="store_true")
    pod.set_defaults(handler=cmd_get_pod)
    gpus = get.add_parser("gpus", aliases=["gpu"], help="GPU types, prices and free counts")
    gpus.add_argument("--json", action="store_true")
    gpus.set_defaults(handler=cmd_get_gpus)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="podctl", description="Pods from the command line.")
    verbs = root.add_subparsers(dest="verb", required=True)
    config = verbs.add_parser("config", help="save the API key and the console's URL")
    config.add_argument("--apiKey")
    config.add_argument("--url", help=f"the console's address (default {DEFAULT_URL})")
    config.set_defaults(handler=cmd_config)
    add_create_pods(
        verbs.add_parser("create", help="deploy pods").add_subparsers(dest="what", required=True)
    )
    add_get(verbs)
    for verb in POD_VERBS:
        what = verbs.add_parser(verb, help=f"{verb} a pod").add_subparsers(
            dest="what", required=True
        )
        pod = what.add_parser("pod", help=f"{verb} a pod by its id")
        pod.add_argument("id")
        pod.set_defaults(handler=cmd_pod_verb)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 with argparse's message on bad usage
    try:
        if args.handler is cmd_config:
            return cmd_config(args)
        return args.handler(Api(*settings()), args)
    except CliError as error:
        print(f"podctl: {error}", file=sys.stderr)
        return error.code
    except (KeyError, TypeError) as error:
        # An answer of another shape (another server, another version): say so, no traceback.
        print(f"podctl: unexpected answer from the server ({error!r})", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # `podctl get pod | head`: no traceback about the closed pipe
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

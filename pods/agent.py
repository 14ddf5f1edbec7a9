"""The host agent: `python -m pods.agent --url https://console.example --token hm_...`.

Runs on a host's machine with nothing but the standard library; every 30 s it posts a
heartbeat (GPU inventory and utilisation from nvidia-smi when there is one, the driver
version, free disk) to /api/v1/hosts/heartbeat. A missed heartbeat is the platform's signal
that the machine is down, so errors are printed and the loop goes on."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

VERSION = "1"
NVIDIA_QUERY = "name,utilization.gpu,memory.used,memory.total,driver_version"


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def gpu_inventory() -> tuple[list[dict], str]:
    """(GPUs, driver) from nvidia-smi; none on a machine without it."""
    if shutil.which("nvidia-smi") is None:
        return [], ""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return [], ""
    gpus, driver = [], ""
    for line in out.splitlines()[:16]:
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 5:
            continue
        name, util, used, total, driver = fields
        gpus.append(
            {
                "model": name,
                "utilization": _int(util),
                "memory_used_mb": _int(used),
                "memory_total_mb": _int(total),
            }
        )
    return gpus, driver


def report(disk_path: str) -> dict:
    gpus, driver = gpu_inventory()
    free = shutil.disk_usage(disk_path).free // 10**9
    return {"gpus": gpus, "driver": driver, "free_disk_gb": free, "agent": VERSION}


def send(url: str, token: str, body: dict, *, timeout: float = 10) -> tuple[int, dict]:
    if not url.startswith(("http://", "https://")):
        raise ValueError("--url must be an http:// or https:// address")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url.rstrip("/") + "/api/v1/hosts/heartbeat",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read(65536) or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read(4096).decode(errors="replace")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the console's base URL")
    parser.add_argument("--token", required=True, help="the machine's agent token")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--disk", default="/", help="the path whose free space is reported")
    parser.add_argument("--count", type=int, default=0, help="stop after N heartbeats (0: never)")
    args = parser.parse_args(argv)
    sent = 0
    while True:
        try:
            status, answer = send(args.url, args.token, report(args.disk))
        except (OSError, ValueError) as error:
            status, answer = 0, {"error": str(error)}
        print(f"heartbeat {status} {json.dumps(answer)}", flush=True)
        if status in (401, 403):
            return 2  # the token is wrong or revoked: retrying cannot help
        sent += 1
        if args.count and sent >= args.count:
            return 0 if status == 200 else 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())

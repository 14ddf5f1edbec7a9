"""Idempotent catalogue and demo data: the 30 GPU types, CPU instance types, data centres, demo
machines on the process runtime and the official templates. Prices are samples; staff edit them
in the admin."""

from decimal import Decimal

from pods.models import CloudType, CpuInstanceType, DataCenter, GpuType, Machine, PodTemplate
from pods.pricing import SERVERLESS_MARKUP

# (id, display name, memory GB, secure $/h, community $/h, minimum spot bid $/h)
GPU_TYPES = [
    ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, "1.64", "1.19", "0.82"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, "1.89", "1.39", "0.95"),
    ("NVIDIA A30", "A30", 24, "0.44", "0.29", "0.17"),
    ("NVIDIA A40", "A40", 48, "0.79", "0.47", "0.28"),
    ("NVIDIA H100 NVL", "H100 NVL", 94, "3.07", "2.59", "1.40"),
    ("NVIDIA H100 PCIe", "H100 PCIe", 80, "2.39", "1.99", "1.25"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, "2.99", "2.69", "1.50"),
    ("NVIDIA L4", "L4", 24, "0.43", "0.28", "0.16"),
    ("NVIDIA L40", "L40", 48, "0.99", "0.69", "0.40"),
    ("NVIDIA L40S", "L40S", 48, "0.86", "0.79", "0.43"),
    ("AMD Instinct MI300X OAM", "MI300X", 192, "2.49", "2.19", "1.29"),
    ("NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", 16, "0.28", "0.23", "0.12"),
    ("NVIDIA GeForce RTX 3070", "RTX 3070", 8, "0.16", "0.13", "0.07"),
    ("NVIDIA GeForce RTX 3080", "RTX 3080", 10, "0.20", "0.17", "0.09"),
    ("NVIDIA GeForce RTX 3080 Ti", "RTX 3080 Ti", 12, "0.21", "0.18", "0.10"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090", 24, "0.43", "0.22", "0.13"),
    ("NVIDIA GeForce RTX 3090 Ti", "RTX 3090 Ti", 24, "0.45", "0.27", "0.15"),
    ("NVIDIA RTX 4000 Ada Generation", "RTX 4000 Ada", 20, "0.38", "0.20", "0.12"),
    ("NVIDIA GeForce RTX 4070 Ti", "RTX 4070 Ti", 12, "0.24", "0.19", "0.10"),
    ("NVIDIA GeForce RTX 4080", "RTX 4080", 16, "0.35", "0.28", "0.15"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, "0.69", "0.34", "0.20"),
    ("NVIDIA RTX 5000 Ada Generation", "RTX 5000 Ada", 32, "0.77", "0.46", "0.25"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, "0.88", "0.74", "0.40"),
    ("NVIDIA RTX A2000", "RTX A2000", 6, "0.18", "0.12", "0.06"),
    ("NVIDIA RTX A4000", "RTX A4000", 16, "0.32", "0.17", "0.10"),
    ("NVIDIA RTX A4500", "RTX A4500", 20, "0.34", "0.19", "0.11"),
    ("NVIDIA RTX A5000", "RTX A5000", 24, "0.36", "0.22", "0.13"),
    ("NVIDIA RTX A6000", "RTX A6000", 48, "0.76", "0.49", "0.25"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2", 16, "0.27", "0.19", "0.10"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2 32GB", 32, "0.35", "0.25", "0.14"),
]

CPU_TYPES = [
    ("cpu3c-2-4", "Compute 2 vCPU", 2, 4, "0.06"),
    ("cpu3c-4-8", "Compute 4 vCPU", 4, 8, "0.12"),
    ("cpu3g-8-32", "General 8 vCPU", 8, 32, "0.32"),
]

DATA_CENTERS = [
    ("EU-RO-1", "Bucharest, Romania", "RO"),
    ("US-TX-3", "Dallas, Texas", "US"),
    ("CA-MTL-1", "Montreal, Canada", "CA"),
]

# (name, data centre, cloud, GPU type id or None, GPU count, vCPU, RAM GB, disk GB)
MACHINES = [
    ("ro-a40-01", "EU-RO-1", CloudType.SECURE, "NVIDIA A40", 8, 64, 400, 8000),
    ("ro-4090-01", "EU-RO-1", CloudType.COMMUNITY, "NVIDIA GeForce RTX 4090", 4, 32, 128, 4000),
    ("tx-h100-01", "US-TX-3", CloudType.SECURE, "NVIDIA H100 80GB HBM3", 8, 128, 1024, 16000),
    ("tx-a100-01", "US-TX-3", CloudType.SECURE, "NVIDIA A100 80GB PCIe", 4, 64, 512, 8000),
    ("mtl-a6000-01", "CA-MTL-1", CloudType.COMMUNITY, "NVIDIA RTX A6000", 2, 16, 96, 2000),
    ("ro-cpu-01", "EU-RO-1", CloudType.SECURE, None, 0, 32, 128, 2000),
]

HTTP_DEMO_COMMAND = """python3 -u - <<'PY'
import http.server, os, pathlib
counter = pathlib.Path(os.environ.get("DEMO_DATA", "/workspace")) / "visits.txt"
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        visits = int(counter.read_text() or 0) + 1 if counter.exists() else 1
        counter.write_text(str(visits))
        body = (f"<h1>Hello from pod {os.environ['RUNPOD_POD_ID']}</h1>"
                f"<p>Visit {visits}, counted in {counter} (kept on the volume).</p>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
port = int(os.environ.get("PORT", "8080"))
print(f"HTTP demo listening on port {port}", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
PY"""

# Jupyter Lab installed with pip into a virtualenv on the pod's volume (its working directory) at
# its first start (about 15 s from PyPI here; later starts reuse it), so the template needs only
# python3: the process runtime's host /usr, or the python image. The proxy's team sign-in guards
# it; JUPYTER_PASSWORD, when set, is Jupyter's own token on top.
JUPYTER_COMMAND = """set -e
venv="${JUPYTER_VENV:-$PWD/.venv-jupyter}"
if [ ! -x "$venv/bin/jupyter-lab" ]; then
  echo "Installing Jupyter Lab into $venv (first start only)..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check jupyterlab
fi
echo "Starting Jupyter Lab on port $PORT"
exec "$venv/bin/jupyter" lab --ip 0.0.0.0 --port "$PORT" --no-browser --allow-root \\
  --ServerApp.root_dir="$PWD" --ServerApp.allow_remote_access=True \\
  --ServerApp.token="${JUPYTER_PASSWORD:-}" --ServerApp.password=''"""

SHELL_COMMAND = (
    'echo "Idle: connect with the web terminal or SSH. Replace this start command with your '
    'own to run something."; exec sleep infinity'
)

BOTH = ["process", "docker"]

TEMPLATES = [
    {
        "name": "HTTP demo",
        "image": "python:3.11-slim",
        "container_disk_gb": 5,
        "volume_gb": 1,
        "ports": [{"port": 8080, "protocol": "http", "label": "Demo page"}],
        "env": [{"key": "DEMO_DATA", "value": "/workspace"}],
        "start_command": HTTP_DEMO_COMMAND,
        "runtimes": BOTH,
        "readme": "A tiny web server that counts visits on the pod volume. Works offline.",
    },
    {
        "name": "RunPod PyTorch 2.1",
        "image": "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04",
        "container_disk_gb": 20,
        "volume_gb": 50,
        "ports": [
            {"port": 8888, "protocol": "http", "label": "Jupyter Lab"},
            {"port": 22, "protocol": "tcp", "label": "SSH"},
        ],
        "env": [{"key": "JUPYTER_PASSWORD", "value": "change-me"}],
        "start_command": "",
        # The image's own start script runs Jupyter and SSH; only a container runtime has it.
        "runtimes": ["docker"],
        "readme": "PyTorch with CUDA, Jupyter Lab on 8888 and SSH on 22 (container machines).",
    },
    {
        "name": "Jupyter Lab",
        "image": "python:3.11-slim",
        "container_disk_gb": 10,
        "volume_gb": 20,
        "ports": [{"port": 8888, "protocol": "http", "label": "Jupyter Lab"}],
        "env": [],
        "start_command": JUPYTER_COMMAND,
        "runtimes": BOTH,
        "readme": (
            "Jupyter Lab on port 8888, installed with pip into .venv-jupyter on the volume at the "
            "first start (under a minute); later starts reuse it."
        ),
    },
    {
        "name": "Ubuntu 22.04 + Python",
        "image": "ubuntu:22.04",
        "container_disk_gb": 10,
        "volume_gb": 20,
        "ports": [],
        "env": [],
        "start_command": SHELL_COMMAND,
        "runtimes": BOTH,
        "readme": "A shell with Python 3 that waits for you: connect with the web terminal.",
    },
]


def run(stdout) -> None:
    for gpu_id, display, memory, secure, community, bid in GPU_TYPES:
        GpuType.objects.update_or_create(
            id=gpu_id,
            defaults={"display_name": display, "memory_gb": memory},
            create_defaults={
                "display_name": display,
                "memory_gb": memory,
                "manufacturer": "AMD" if gpu_id.startswith("AMD") else "NVIDIA",
                "secure_price": Decimal(secure),
                "community_price": Decimal(community),
                "min_bid": Decimal(bid),
                "serverless_price": Decimal(secure) * SERVERLESS_MARKUP,
            },
        )
    for cpu_id, name, vcpu, memory, price in CPU_TYPES:
        CpuInstanceType.objects.get_or_create(
            id=cpu_id,
            defaults={
                "name": name,
                "vcpu": vcpu,
                "memory_gb": memory,
                "price": Decimal(price),
                "serverless_price": Decimal(price) * SERVERLESS_MARKUP,
            },
        )
    for dc_id, name, country in DATA_CENTERS:
        DataCenter.objects.get_or_create(id=dc_id, defaults={"name": name, "country": country})
    for name, dc, cloud, gpu, count, vcpu, memory, disk in MACHINES:
        Machine.objects.get_or_create(
            name=name,
            defaults={
                "data_center_id": dc,
                "cloud_type": cloud,
                "gpu_type_id": gpu,
                "gpu_count": count,
                "vcpu": vcpu,
                "memory_gb": memory,
                "disk_gb": disk,
                "runtime": "process",
            },
        )
    for values in TEMPLATES:  # official templates are the seed's: it keeps them current
        PodTemplate.objects.update_or_create(team=None, name=values["name"], defaults=values)
    stdout.write(
        f"Pods: {GpuType.objects.count()} GPU types, {Machine.objects.count()} machines, "
        f"{PodTemplate.objects.filter(team=None).count()} official templates."
    )

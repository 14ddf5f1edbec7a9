"""SPEC.md's minimum secure-cloud specs for host onboarding, checked on what the host
declares: >= RTX 30xx / A4000, >= 4 physical cores per GPU, RAM >= total VRAM + 12 GB,
>= 1 TB NVMe per GPU, >= 1 Gbps, Ubuntu 22.04, driver >= 550."""

from __future__ import annotations

from dataclasses import dataclass

from pods.models import GpuType

# Display-name prefixes of GPUs at or above an RTX 30xx / RTX A4000 (the catalogue's names).
ELIGIBLE_GPU_PREFIXES = (
    "RTX 30",
    "RTX 40",
    "RTX 50",
    "RTX A4",
    "RTX A5",
    "RTX A6",
    "RTX 4000 Ada",
    "RTX 5000 Ada",
    "RTX 6000 Ada",
    "A30",
    "A40",
    "A100",
    "H100",
    "H200",
    "L4",
    "L40",
    "MI300",
)
MIN_CORES_PER_GPU = 4
RAM_OVER_VRAM_GB = 12
MIN_NVME_GB_PER_GPU = 1000
MIN_NETWORK_MBPS = 1000
REQUIRED_OS = "ubuntu-22.04"
MIN_DRIVER_MAJOR = 550


@dataclass(frozen=True)
class Declared:
    gpu_type: GpuType
    gpu_count: int
    vram_gb_per_gpu: int
    physical_cores: int
    ram_gb: int
    nvme_gb: int
    network_mbps: int
    os: str
    driver_version: str


def gpu_eligible(gpu_type: GpuType) -> bool:
    return gpu_type.display_name.startswith(ELIGIBLE_GPU_PREFIXES)


def driver_major(version: str) -> int | None:
    head = version.strip().split(".")[0]
    return int(head) if head.isdigit() and len(head) <= 4 else None


def problems(spec: Declared) -> dict[str, str]:
    """Field -> why it is below the minimum; empty when the machine qualifies."""
    found: dict[str, str] = {}
    count = max(spec.gpu_count, 1)
    if not gpu_eligible(spec.gpu_type):
        found["gpu_type"] = f"{spec.gpu_type.display_name} is below the minimum (RTX 30xx / A4000)."
    if spec.vram_gb_per_gpu < spec.gpu_type.memory_gb:
        found["vram_gb_per_gpu"] = (
            f"A {spec.gpu_type.display_name} has {spec.gpu_type.memory_gb} GB of VRAM."
        )
    if spec.physical_cores < MIN_CORES_PER_GPU * count:
        found["physical_cores"] = (
            f"At least {MIN_CORES_PER_GPU} physical cores per GPU: "
            f"{MIN_CORES_PER_GPU * count} for {count} GPUs."
        )
    need_ram = spec.vram_gb_per_gpu * count + RAM_OVER_VRAM_GB
    if spec.ram_gb < need_ram:
        found["ram_gb"] = f"RAM must be at least total VRAM + {RAM_OVER_VRAM_GB} GB: {need_ram} GB."
    if spec.nvme_gb < MIN_NVME_GB_PER_GPU * count:
        found["nvme_gb"] = f"At least 1 TB of NVMe per GPU: {MIN_NVME_GB_PER_GPU * count} GB."
    if spec.network_mbps < MIN_NETWORK_MBPS:
        found["network_mbps"] = "At least 1 Gbps (1000 Mbps)."
    if spec.os != REQUIRED_OS:
        found["os"] = "Ubuntu 22.04 is required."
    major = driver_major(spec.driver_version)
    if major is None or major < MIN_DRIVER_MAJOR:
        found["driver_version"] = f"NVIDIA driver {MIN_DRIVER_MAJOR} or newer is required."
    return found

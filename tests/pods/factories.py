"""Catalogue and pod helpers for the pods tests (real rows, real services)."""

from datetime import datetime
from decimal import Decimal

from billing.services import adjust_balance
from pods.models import CloudType, CpuInstanceType, DataCenter, GpuType, Machine, Pod, PodTemplate
from pods.services import DeployRequest

HTTP_SERVER = (
    'echo "serving on $PORT"; echo volume-data > /workspace/kept.txt; '
    "echo scratch > /root/scratch.txt; exec python3 -m http.server $PORT --bind 0.0.0.0"
)


def catalogue() -> dict:
    """One data centre, an A40 machine (4 GPUs, secure), a 4090 (2, community), a CPU box."""
    dc = DataCenter.objects.create(id="EU-RO-1", name="Bucharest", country="RO")
    other = DataCenter.objects.create(id="US-TX-3", name="Dallas", country="US")
    a40 = GpuType.objects.create(
        id="NVIDIA A40",
        display_name="A40",
        memory_gb=48,
        secure_price=Decimal("0.79"),
        community_price=Decimal("0.47"),
        min_bid=Decimal("0.28"),
    )
    rtx = GpuType.objects.create(
        id="NVIDIA GeForce RTX 4090",
        display_name="RTX 4090",
        memory_gb=24,
        secure_price=Decimal("0.69"),
        community_price=Decimal("0.34"),
        min_bid=Decimal("0.20"),
    )
    cpu = CpuInstanceType.objects.create(
        id="cpu3c-2-4", name="Compute 2 vCPU", vcpu=2, memory_gb=4, price=Decimal("0.06")
    )
    machine = Machine.objects.create(
        name="a40-box",
        data_center=dc,
        cloud_type=CloudType.SECURE,
        gpu_type=a40,
        gpu_count=4,
        vcpu=32,
        memory_gb=128,
        disk_gb=4000,
    )
    rtx_machine = Machine.objects.create(
        name="4090-box",
        data_center=dc,
        cloud_type=CloudType.COMMUNITY,
        gpu_type=rtx,
        gpu_count=2,
        vcpu=16,
        memory_gb=64,
        disk_gb=2000,
    )
    cpu_machine = Machine.objects.create(
        name="cpu-box",
        data_center=dc,
        cloud_type=CloudType.SECURE,
        gpu_count=0,
        vcpu=8,
        memory_gb=16,
        disk_gb=1000,
    )
    return {
        "dc": dc,
        "other_dc": other,
        "a40": a40,
        "rtx": rtx,
        "cpu": cpu,
        "machine": machine,
        "rtx_machine": rtx_machine,
        "cpu_machine": cpu_machine,
    }


def fund(team, amount: str = "100", key: str = "") -> None:
    adjust_balance(
        team=team,
        amount=Decimal(amount),
        reason="test credit",
        actor=None,
        key=key or f"test-credit-{team.pk}-{amount}",
    )


def http_template(team=None) -> PodTemplate:
    return PodTemplate.objects.create(
        team=team,
        name="HTTP test server",
        image="python:3.11-slim",
        container_disk_gb=5,
        volume_gb=1,
        ports=[{"port": 8080, "protocol": "http"}],
        start_command=HTTP_SERVER,
    )


def deploy_request(gpu: GpuType, **overrides) -> DeployRequest:
    values = dict(
        name="test pod",
        cloud_type=CloudType.SECURE,
        image="python:3.11-slim",
        container_disk_gb=5,
        volume_gb=1,
        gpu_type=gpu,
        gpu_count=1,
        start_command="exec sleep 600",
    )
    values.update(overrides)
    return DeployRequest(**values)


def stopped_pod(team, machine, **fields) -> Pod:
    """A pod row that never ran (status exited): for pages and access checks."""
    values = dict(
        team=team,
        name="parked",
        machine=machine,
        cloud_type=machine.cloud_type,
        gpu_type=machine.gpu_type,
        gpu_count=1,
        requested_gpu_count=1,
        vcpu=8,
        memory_gb=32,
        image="python:3.11-slim",
        container_disk_gb=5,
        volume_gb=1,
        status=Pod.Status.EXITED,
    )
    values.update(fields)
    return Pod.objects.create(**values)


def posted_by(until: datetime, *teams) -> datetime:
    """The first tick at which the teams' hours before `until` (an hour boundary) are all
    posted: `until` plus the longest of their close delays (pods.metering.close_delay). The
    next hour is still open then (a delay is under an hour), so the rows are exactly those."""
    from pods.metering import close_delay

    return until + max(close_delay(team.pk) for team in teams)

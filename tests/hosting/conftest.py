"""Hosting fixtures: acme as a vetted host (KYC verified) with an A40 machine it registered,
reviewed by staff and listed, whose agent holds a token."""

from decimal import Decimal

import pytest

from hosting import services
from hosting.models import HostedMachine
from hosting.specs import Declared
from pods.models import CloudType
from tests.pods.factories import catalogue


@pytest.fixture
def parts(db):
    return catalogue()


@pytest.fixture
def host(team):
    services.set_host(actor=None, team=team, is_host=True)
    services.set_kyc(actor=None, team=team, status="verified")
    return team


def good_spec(parts, **overrides) -> Declared:
    """An A40 box that meets every minimum for 2 GPUs."""
    values = dict(
        gpu_type=parts["a40"],
        gpu_count=2,
        vram_gb_per_gpu=48,
        physical_cores=16,
        ram_gb=128,
        nvme_gb=4000,
        network_mbps=10000,
        os="ubuntu-22.04",
        driver_version="550.54.15",
    )
    values.update(overrides)
    return Declared(**values)


def register(team, parts, name: str = "host-a40") -> HostedMachine:
    return services.register_machine(
        actor=None,
        team=team,
        registration=services.Registration(
            name=name,
            spec=good_spec(parts),
            cloud_type=CloudType.SECURE,
            data_center=parts["dc"],
            min_bid_per_gpu=Decimal("0.30"),
        ),
    )


@pytest.fixture
def listed(host, parts) -> HostedMachine:
    """The host's machine, approved, burnt in and listed, online after one heartbeat."""
    hosted = register(host, parts)
    services.start_burn_in(actor=None, hosted=hosted)
    services.list_publicly(actor=None, hosted=hosted)
    services.record_heartbeat(hosted=hosted, report={})
    hosted.refresh_from_db()
    return hosted

"""Reliability exactly as SPEC.md defines it, and the 98 % floor of the GPU pool."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from hosting import services
from hosting.models import Downtime, Maintenance
from pods.models import CloudType, Pod
from pods.scheduling import Need, PlacementError, place
from pods.services import start_pod
from teams.models import AuditEvent
from tests.pods.factories import fund, stopped_pod

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def down(hosted, minutes: float, *, ago: timedelta = timedelta(days=1)) -> Downtime:
    start = NOW - ago
    return Downtime.objects.create(
        machine=hosted, started_at=start, ended_at=start + timedelta(minutes=minutes)
    )


def test_the_spec_example_holds_exactly(listed):
    down(listed, 30)
    assert services.reliability(listed, now=NOW) == Decimal("99.95")
    assert services.score(Decimal(30)) == Decimal("99.95")


def test_the_buffer_absorbs_ten_minutes_and_the_score_is_capped(listed):
    assert services.reliability(listed, now=NOW) == Decimal("100.00")
    down(listed, 10)
    assert services.reliability(listed, now=NOW) == Decimal("100.00")
    down(listed, 1, ago=timedelta(days=2))
    # 11 minutes: (43200 - 11 + 10) / 43200 = 99.9976... rounded down.
    assert services.reliability(listed, now=NOW) == Decimal("99.99")


def test_downtime_inside_booked_maintenance_does_not_count(listed):
    start = NOW - timedelta(days=3)
    Maintenance.objects.create(machine=listed, starts_at=start, ends_at=start + timedelta(hours=2))
    # 90 minutes down from 30 minutes before the window: only those 30 minutes count.
    Downtime.objects.create(
        machine=listed,
        started_at=start - timedelta(minutes=30),
        ended_at=start + timedelta(minutes=60),
    )
    assert services.reliability(listed, now=NOW) == Decimal("99.95")
    [(_, minutes)] = services.counted_downtime(listed, now=NOW)
    assert minutes == Decimal(30)


def test_downtime_leaves_the_rolling_window(listed):
    down(listed, 60, ago=timedelta(days=30, minutes=30))  # half of it is older than 30 days
    assert services.reliability(listed, now=NOW) == services.score(Decimal(30))
    assert services.reliability(listed, now=NOW + timedelta(hours=1)) == Decimal("100.00")


def test_an_open_interval_counts_up_to_now(listed):
    Downtime.objects.create(machine=listed, started_at=NOW - timedelta(minutes=30))
    assert services.reliability(listed, now=NOW) == Decimal("99.95")


def need(team, parts) -> Need:
    return Need(
        cloud_type=CloudType.SECURE,
        data_center=parts["dc"],
        gpu_type=parts["a40"],
        gpu_count=1,
        team=team,
    )


def test_at_97_9_percent_no_new_pods_but_its_pod_starts_with_0_gpus(listed, parts, charlie):
    parts["machine"].delete()  # the host's machine is the only A40
    renter = charlie.memberships.get().team
    fund(renter, "50")
    pod = stopped_pod(renter, listed.machine)
    # (43200 - D + 10) / 43200 = 0.979  =>  D = 917.2 minutes
    down(listed, 917.2)
    assert services.refresh_reliability(hosted=listed, now=NOW) == Decimal("97.90")
    with pytest.raises(PlacementError):
        place(need(renter, parts))
    started = start_pod(actor=charlie, pod=pod, zero_gpus=True)
    assert (started.status, started.gpu_count) == (Pod.Status.STARTING, 0)
    assert AuditEvent.objects.filter(action="hosting.left_pool").exists()
    # A month later the downtime is out of the window: back in the pool.
    services.refresh_reliability(hosted=listed, now=NOW + timedelta(days=31))
    assert place(need(renter, parts)).machine == listed.machine
    assert AuditEvent.objects.filter(action="hosting.rejoined_pool").exists()


def test_just_under_98_is_out_and_98_is_in(listed, parts, charlie):
    parts["machine"].delete()
    renter = charlie.memberships.get().team
    down(listed, 874)  # (43200 - 874 + 10) / 43200 = 98.0000...
    assert services.refresh_reliability(hosted=listed, now=NOW) == Decimal("98.00")
    assert place(need(renter, parts)).machine == listed.machine
    down(listed, 0.5, ago=timedelta(days=2))
    assert services.refresh_reliability(hosted=listed, now=NOW) == Decimal("97.99")
    with pytest.raises(PlacementError):
        place(need(renter, parts))

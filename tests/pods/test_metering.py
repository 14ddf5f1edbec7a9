"""Per-minute metering on PostgreSQL, with time frozen and moved by time-machine."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Sum

from billing.models import BillingAccount, LedgerEntry
from billing.money import period_share
from pods import metering
from pods.metering import change_status, meter
from pods.models import NetworkVolume, Pod
from tests.billing.test_concurrency import run_in_threads
from tests.pods.factories import catalogue, fund, stopped_pod

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def running_pod(team, machine, **fields) -> Pod:
    values = dict(status=Pod.Status.RUNNING, volume_gb=0, container_disk_gb=0, metered_until=T0)
    values.update(fields)
    return stopped_pod(team, machine, **values)


def charged(pod, kind: str | None = None) -> Decimal:
    entries = LedgerEntry.objects.filter(source_type="pod", source_id=pod.public_id)
    if kind:
        entries = entries.filter(kind=kind)
    return -(entries.aggregate(total=Sum("amount"))["total"] or 0)


@pytest.fixture
def parts(db):
    return catalogue()


@pytest.fixture
def team(team):
    """Acme with credit for every catch-up here: what a catch-up does past a team's funds is
    tests/pods/test_outage.py's subject."""
    fund(team, "1000")
    return team


def test_it_charges_exactly_079_for_60_minutes_at_079_per_hour(team, parts):
    pod = running_pod(team, parts["machine"])  # A40, Secure Cloud, $0.79/h
    meter(until=T0 + timedelta(minutes=60))
    assert charged(pod, "usage_compute") == Decimal("0.79")
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 60
    call_command("check_ledger")


def test_each_minute_is_the_same_share_python_computes(team, parts):
    pod = running_pod(team, parts["machine"], metered_until=T0 + timedelta(minutes=7))
    meter(until=T0 + timedelta(minutes=9))
    amounts = sorted(
        LedgerEntry.objects.filter(source_id=pod.public_id).values_list("idempotency_key", "amount")
    )
    minute = int(T0.timestamp()) // 60 + 7
    assert [amount for _, amount in amounts] == [
        -period_share(Decimal("0.79"), minute, 60),
        -period_share(Decimal("0.79"), minute + 1, 60),
    ]
    assert amounts[0][0] == f"pod:{pod.public_id}:compute:202611021007"


def test_a_stopped_20_gb_volume_costs_its_monthly_share_each_minute(team, parts):
    pod = stopped_pod(team, parts["machine"], volume_gb=20, metered_until=T0)
    meter(until=T0 + timedelta(minutes=1))
    per_minute = Decimal(20) * Decimal("0.20") / (30 * 24 * 60)
    assert abs(charged(pod, "usage_storage") - per_minute) <= Decimal("1e-10")
    assert charged(pod, "usage_compute") == 0


def test_a_stopped_20_gb_volume_costs_exactly_4_dollars_over_30_days(team, parts):
    pod = stopped_pod(team, parts["machine"], volume_gb=20, metered_until=T0)
    meter(until=T0 + timedelta(days=30))
    assert charged(pod, "usage_storage") == Decimal("4.00")


def test_a_running_pod_pays_the_running_volume_rate_and_its_container_disk(team, parts, settings):
    settings.CONTAINER_DISK_PRICE_PER_GB_MONTH = "0.10"
    pod = running_pod(team, parts["machine"], volume_gb=20, container_disk_gb=10)
    meter(until=T0 + timedelta(days=30))
    assert charged(pod, "usage_storage") == Decimal("3.00")  # 20 x 0.10 + 10 x 0.10


@pytest.mark.parametrize(("size_gb", "monthly"), [(999, "69.93"), (1000, "50.00")])
def test_network_volumes_use_the_rate_of_their_size(team, parts, size_gb, monthly):
    volume = NetworkVolume.objects.create(
        team=team, name="data", size_gb=size_gb, data_center=parts["dc"], metered_until=T0
    )
    meter(until=T0 + timedelta(days=30))
    entries = LedgerEntry.objects.filter(source_type="network_volume", source_id=volume.public_id)
    assert -entries.aggregate(total=Sum("amount"))["total"] == Decimal(monthly)


def test_it_charges_a_cpu_pod_its_instance_price(team, parts):
    pod = running_pod(
        team, parts["cpu_machine"], gpu_type=None, gpu_count=0, cpu_instance=parts["cpu"]
    )
    meter(until=T0 + timedelta(hours=1))
    assert charged(pod, "usage_compute") == Decimal("0.06")


def test_a_spot_pod_pays_its_bid(team, parts):
    pod = running_pod(
        team, parts["machine"], gpu_count=2, pricing=Pod.Pricing.SPOT, bid_per_gpu=Decimal("0.30")
    )
    meter(until=T0 + timedelta(hours=1))
    assert charged(pod, "usage_compute") == Decimal("0.60")


def test_running_the_same_tick_twice_charges_nothing_more(team, parts):
    fund(team, "50")
    running_pod(team, parts["machine"], volume_gb=10)
    meter(until=T0 + timedelta(minutes=5))
    count = LedgerEntry.objects.count()
    balance = BillingAccount.objects.get(team=team).balance
    result = meter(until=T0 + timedelta(minutes=5))
    assert result.entries == 0
    assert LedgerEntry.objects.count() == count
    assert BillingAccount.objects.get(team=team).balance == balance


def test_catch_up_after_downtime_charges_each_missed_minute_once(team, parts):
    pod = running_pod(team, parts["machine"])
    meter(until=T0 + timedelta(minutes=2))
    meter(until=T0 + timedelta(minutes=62))  # the scheduler was down for an hour
    assert charged(pod, "usage_compute") == Decimal("0.79") + period_share(
        Decimal("0.79"), int(T0.timestamp()) // 60 + 60, 60
    ) + period_share(Decimal("0.79"), int(T0.timestamp()) // 60 + 61, 60)
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 62


def test_minutes_while_the_machine_is_offline_are_not_charged(team, parts):
    pod = running_pod(team, parts["machine"])
    parts["machine"].is_online = False
    parts["machine"].save()
    meter(until=T0 + timedelta(minutes=30))
    assert charged(pod) == 0
    pod.refresh_from_db()
    assert pod.metered_until == T0 + timedelta(minutes=30)


def test_a_status_change_settles_the_old_rate_and_skips_the_partial_minute(team, parts):
    pod = running_pod(team, parts["machine"], volume_gb=20)
    with time_machine.travel(T0 + timedelta(minutes=10, seconds=30), tick=False):
        change_status(pod, Pod.Status.EXITED)
        pod.save()
    meter(until=T0 + timedelta(minutes=20))
    compute_keys = LedgerEntry.objects.filter(kind="usage_compute").values_list(
        "idempotency_key", flat=True
    )
    assert len(compute_keys) == 10  # minutes 0-9 ran whole; minute 10 was partial
    storage = LedgerEntry.objects.filter(kind="usage_storage").order_by("idempotency_key")
    assert storage.count() == 19  # 10 at the running rate, minute 10 skipped, 9 stopped
    first_stopped = storage.get(idempotency_key=f"pod:{pod.public_id}:storage:202611021011")
    minute = int(T0.timestamp()) // 60 + 11
    assert -first_stopped.amount == period_share(Decimal("4.00"), minute, 30 * 24 * 60)


def test_terminated_pods_are_charged_up_to_their_end_only(team, parts):
    pod = running_pod(team, parts["machine"])
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        change_status(pod, Pod.Status.TERMINATED)
        pod.save()
    meter(until=T0 + timedelta(minutes=30))
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 3


def test_the_command_runs_a_tick_and_refuses_the_future(team, parts, capsys):
    running_pod(team, parts["machine"])
    with time_machine.travel(T0 + timedelta(minutes=5, seconds=20), tick=False):
        call_command("meter", "--until", "2026-11-02T10:03:00")
        assert LedgerEntry.objects.filter(kind="usage_compute").count() == 3
        with pytest.raises(Exception, match="future"):
            call_command("meter", "--until", "2026-11-02T11:00:00")
        call_command("meter")
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 5
    assert "Metered up to 2026-11-02 10:05 UTC" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_charge_each_pod_minute_once():
    parts = catalogue()
    from teams.models import Team

    team = Team.objects.create(name="Busy", slug="busy", is_personal=False)
    fund(team, "1000")
    pods = [running_pod(team, parts["machine"], volume_gb=5) for _ in range(30)]
    until = T0 + timedelta(minutes=10)
    run_in_threads(lambda: meter(until=until, batch_size=7), [(), ()])
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 30 * 10
    assert LedgerEntry.objects.filter(kind="usage_storage").count() == 30 * 10
    assert all(charged(pod, "usage_compute") == period_sum(Decimal("0.79"), 10) for pod in pods)
    call_command("check_ledger")


@pytest.mark.django_db(transaction=True)
def test_a_tick_killed_halfway_is_completed_by_the_next(monkeypatch):
    parts = catalogue()
    from teams.models import Team

    team = Team.objects.create(name="Crashy", slug="crashy", is_personal=False)
    fund(team, "1000")
    for _ in range(10):
        running_pod(team, parts["machine"])
    real_charge = metering._charge_pods
    calls = []

    def dying_charge(ids, **kwargs):
        calls.append(ids)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        return real_charge(ids, **kwargs)

    monkeypatch.setattr(metering, "_charge_pods", dying_charge)
    until = T0 + timedelta(minutes=4)
    with pytest.raises(SystemExit):
        meter(until=until, batch_size=4)
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 4 * 4  # 1st batch only
    monkeypatch.setattr(metering, "_charge_pods", real_charge)
    meter(until=until, batch_size=4)
    assert LedgerEntry.objects.filter(kind="usage_compute").count() == 10 * 4
    call_command("check_ledger")


def period_sum(hourly: Decimal, minutes: int) -> Decimal:
    first = int(T0.timestamp()) // 60
    return sum((period_share(hourly, first + i, 60) for i in range(minutes)), Decimal(0))


def test_the_pod_page_shows_what_the_pod_has_cost_so_far(team, parts, alice):
    from django.urls import reverse

    from tests.conftest import login

    pod = running_pod(team, parts["machine"], volume_gb=20)
    meter(until=T0 + timedelta(minutes=60))
    html = login(alice).get(reverse("pod_detail", args=[team.slug, pod.public_id])).content
    assert b'data-testid="spent">$0.79<' in html  # $0.79 compute + $0.0028 storage

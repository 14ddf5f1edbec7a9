"""Metering on PostgreSQL, with time frozen and moved by time-machine: balances move every
minute, the ledger gets a row per resource, kind and hour (billing.usage)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Sum

from billing.models import BillingAccount, LedgerEntry
from billing.money import period_share
from billing.usage import open_accruals
from pods import metering
from pods.metering import change_status, close_delay, meter
from pods.models import NetworkVolume, Pod
from tests.billing.test_concurrency import run_in_threads
from tests.pods.factories import catalogue, fund, posted_by, stopped_pod

# A team's hour rows are posted close_delay(team) after the hour (test_rollup.py's subject):
# the tests that read rows tick at posted_by(the hour's end, team).
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def running_pod(team, machine, **fields) -> Pod:
    values = dict(status=Pod.Status.RUNNING, volume_gb=0, container_disk_gb=0, metered_until=T0)
    values.update(fields)
    return stopped_pod(team, machine, **values)


def charged(resource, kind: str | None = None) -> Decimal:
    """What a pod (or network volume) has cost: its posted rows and its open hour."""
    source_type = "pod" if isinstance(resource, Pod) else "network_volume"
    entries = LedgerEntry.objects.filter(source_type=source_type, source_id=resource.public_id)
    accrued = [
        line
        for line in open_accruals(resource.team)
        if (line.source_type, line.source_id) == (source_type, resource.public_id)
    ]
    if kind:
        entries = entries.filter(kind=kind)
        accrued = [line for line in accrued if line.kind == kind]
    posted = entries.aggregate(total=Sum("amount"))["total"] or 0
    return -(posted + sum(line.amount for line in accrued))


def usage_rows(resource=None):
    rows = LedgerEntry.objects.filter(kind__in=LedgerEntry.USAGE_KINDS)
    return rows.filter(source_id=resource.public_id) if resource else rows


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
    meter(until=T0 + HOUR)
    assert charged(pod, "usage_compute") == Decimal("0.79")
    meter(until=posted_by(T0 + HOUR, team))
    [row] = usage_rows()  # one row for the hour; no $0 storage row
    assert (row.kind, row.amount, row.minutes) == ("usage_compute", Decimal("-0.79"), 60)
    assert (row.period_start, row.period_end) == (T0, T0 + HOUR)
    call_command("check_ledger")


def test_each_minute_is_the_same_share_python_computes(team, parts):
    pod = running_pod(team, parts["machine"], metered_until=T0 + timedelta(minutes=7))
    before = BillingAccount.objects.get(team=team).balance
    minute = int(T0.timestamp()) // 60 + 7
    for n in range(2):
        meter(until=T0 + timedelta(minutes=8 + n))
        share = period_share(Decimal("0.79"), minute + n, 60)
        assert BillingAccount.objects.get(team=team).balance == before - share
        before -= share
    assert not usage_rows().exists()  # the hour is open: charged, not posted yet
    [line] = open_accruals(team)
    assert (line.kind, line.hour, line.minutes) == ("usage_compute", T0, 2)
    assert line.amount == -period_sum(Decimal("0.79"), 2, first=minute)
    call_command("check_ledger")
    meter(until=posted_by(T0 + HOUR, team))
    row = usage_rows().get()
    assert row.idempotency_key == f"pod:{pod.public_id}:compute:202611021007-202611021100"
    assert row.amount == -period_sum(Decimal("0.79"), 53, first=minute)


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
    meter(until=posted_by(T0 + timedelta(days=30), team))
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
    late = 2 + close_delay(team.pk) // timedelta(minutes=1)
    meter(until=T0 + HOUR + timedelta(minutes=late))  # the scheduler was down for an hour
    assert charged(pod, "usage_compute") == Decimal("0.79") + period_sum(
        Decimal("0.79"), late, first=int(T0.timestamp()) // 60 + 60
    )
    assert usage_rows().count() == 1  # the hour that passed; the minutes after it are open
    call_command("check_ledger")


def test_minutes_while_the_machine_is_offline_are_not_charged(team, parts):
    pod = running_pod(team, parts["machine"])
    meter(until=T0 + timedelta(minutes=10))
    parts["machine"].is_online = False
    parts["machine"].save()
    meter(until=T0 + timedelta(minutes=30))
    assert charged(pod) == period_sum(Decimal("0.79"), 10)
    parts["machine"].is_online = True
    parts["machine"].save()
    meter(until=T0 + timedelta(minutes=40))
    first = int(T0.timestamp()) // 60
    assert charged(pod) == period_sum(Decimal("0.79"), 10) + period_sum(
        Decimal("0.79"), 10, first=first + 30
    )
    # Each change of rate posted the open part: minutes 0-9, then the offline 10-29 cost $0.
    assert list(usage_rows().values_list("period_start", "period_end")) == [
        (T0, T0 + timedelta(minutes=10))
    ]
    call_command("check_ledger")


def test_a_status_change_settles_the_old_rate_and_skips_the_partial_minute(team, parts):
    pod = running_pod(team, parts["machine"], volume_gb=20)
    with time_machine.travel(T0 + timedelta(minutes=10, seconds=30), tick=False):
        change_status(pod, Pod.Status.EXITED)
        pod.save()
    meter(until=T0 + timedelta(minutes=20))
    # Minutes 0-9 ran whole and were posted at the change; minute 10 was partial.
    compute = usage_rows().get(kind="usage_compute")
    assert (compute.period_end, compute.minutes) == (T0 + timedelta(minutes=10), 10)
    assert charged(pod, "usage_compute") == period_sum(Decimal("0.79"), 10)
    first = int(T0.timestamp()) // 60
    running = sum(period_share(Decimal("2.00"), first + m, 30 * 24 * 60) for m in range(10))
    stopped = sum(period_share(Decimal("4.00"), first + m, 30 * 24 * 60) for m in range(11, 20))
    assert charged(pod, "usage_storage") == running + stopped
    call_command("check_ledger")


def test_terminated_pods_are_charged_up_to_their_end_only(team, parts):
    pod = running_pod(team, parts["machine"])
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        change_status(pod, Pod.Status.TERMINATED)
        pod.save()
    meter(until=T0 + timedelta(minutes=30))
    assert usage_rows().get().minutes == 3
    assert charged(pod) == period_sum(Decimal("0.79"), 3)
    call_command("check_ledger")


def test_the_command_runs_a_tick_and_refuses_the_future(team, parts, capsys):
    pod = running_pod(team, parts["machine"])
    with time_machine.travel(T0 + timedelta(minutes=5, seconds=20), tick=False):
        call_command("meter", "--until", "2026-11-02T10:03:00")
        assert charged(pod) == period_sum(Decimal("0.79"), 3)
        with pytest.raises(Exception, match="future"):
            call_command("meter", "--until", "2026-11-02T11:00:00")
        call_command("meter")
    assert charged(pod) == period_sum(Decimal("0.79"), 5)
    assert "Metered up to 2026-11-02 10:05 UTC" in capsys.readouterr().out


def busy_teams(parts, teams: int, pods: int, **fields) -> list[Pod]:
    from teams.models import Team

    made = []
    for n in range(teams):
        team = Team.objects.create(name=f"Busy {n}", slug=f"busy-{n}", is_personal=False)
        fund(team, "1000")
        made += [running_pod(team, parts["machine"], **fields) for _ in range(pods)]
    return made


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_charge_each_pod_minute_once():
    parts = catalogue()
    pods = busy_teams(parts, 6, 5, volume_gb=5)
    closed = posted_by(T0 + HOUR, *{pod.team for pod in pods})
    for until in (T0 + timedelta(minutes=58), closed):
        run_in_threads(lambda until=until: meter(until=until, batch_size=2), [(), ()])
        call_command("check_ledger")
    assert usage_rows().filter(kind="usage_compute").count() == 30  # one per pod and hour
    assert usage_rows().filter(kind="usage_storage").count() == 30
    after = (closed - T0 - HOUR) // timedelta(minutes=1)
    for pod in pods:
        assert charged(pod, "usage_compute") == Decimal("0.79") + period_sum(
            Decimal("0.79"), after, first=int(T0.timestamp()) // 60 + 60
        )


@pytest.mark.django_db(transaction=True)
def test_a_tick_killed_halfway_is_completed_by_the_next(monkeypatch):
    parts = catalogue()

    pods = busy_teams(parts, 5, 2)
    real_batch = metering._meter_batch
    calls = []

    def dying_batch(team_ids, **kwargs):
        calls.append(team_ids)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        return real_batch(team_ids, **kwargs)

    monkeypatch.setattr(metering, "_meter_batch", dying_batch)
    until = T0 + timedelta(minutes=64)
    with pytest.raises(SystemExit):
        meter(until=until, batch_size=2)
    four = Decimal("0.79") + period_sum(Decimal("0.79"), 4, first=int(T0.timestamp()) // 60 + 60)
    assert [charged(pod) for pod in pods] == [four] * 4 + [0] * 6  # the 1st batch only
    call_command("check_ledger")
    monkeypatch.setattr(metering, "_meter_batch", real_batch)
    meter(until=until, batch_size=2)
    assert [charged(pod) for pod in pods] == [four] * 10
    call_command("check_ledger")


def period_sum(hourly: Decimal, minutes: int, *, first: int | None = None) -> Decimal:
    first = int(T0.timestamp()) // 60 if first is None else first
    return sum((period_share(hourly, first + i, 60) for i in range(minutes)), Decimal(0))


def test_the_pod_page_shows_what_the_pod_has_cost_so_far(team, parts, alice):
    from django.urls import reverse

    from tests.conftest import login

    pod = running_pod(team, parts["machine"], volume_gb=20)
    meter(until=T0 + timedelta(minutes=60))
    html = login(alice).get(reverse("pod_detail", args=[team.slug, pod.public_id])).content
    assert b'data-testid="spent">$0.79<' in html  # $0.79 compute + $0.0028 storage

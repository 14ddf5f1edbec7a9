"""Catch-up after a metering outage (beat or workers down): a team is charged minute by minute
only as far as its funds reach; what its running pods used after that is written off and shown
to staff, never charged; the pods are stopped as low funds would have stopped them on time."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db.models import Sum
from django.test import TestCase
from django.urls import reverse

from billing.models import BillingAccount, LedgerEntry, UsageWriteOff
from billing.money import period_share
from pods import metering
from pods.metering import change_status, meter
from pods.models import NetworkVolume, Pod
from teams.models import AuditEvent, Team
from tests.billing.test_concurrency import run_in_threads
from tests.pods.factories import catalogue, fund, stopped_pod
from tests.pods.test_funds import T0, status, tick
from tests.pods.test_machine_admin import staff
from tests.pods.test_metering import charged, running_pod

PER_MINUTE = Decimal("0.20")  # $12/h


def balance(team) -> Decimal:
    return BillingAccount.objects.get(team=team).balance


def billed_minutes(pod, kind: str) -> list[str]:
    """The minutes of `kind` the pod was charged (labels), from its rows (each covers its
    first `minutes` minutes billed at that kind's rate) and its open segment."""
    rows = LedgerEntry.objects.filter(source_id=pod.public_id, kind=kind, amount__lt=0)
    spans = [(row.period_start, row.minutes) for row in rows]
    pod.refresh_from_db()
    watermark = BillingAccount.objects.get(team=pod.team).usage_metered_until
    compute = kind == "usage_compute"
    rate = (
        pod.meter_compute if compute else (pod.meter_storage_running or pod.meter_storage_stopped)
    )
    if rate and watermark and watermark > pod.metered_until:
        end = watermark
        if compute and pod.meter_running_until:
            end = max(pod.metered_until, min(end, pod.meter_running_until))
        spans.append((pod.metered_until, int((end - pod.metered_until).total_seconds()) // 60))
    return sorted(
        (start + timedelta(minutes=m)).strftime("%Y%m%d%H%M")
        for start, minutes in spans
        for m in range(minutes)
    )


def compute_minutes(pod) -> list[str]:
    return billed_minutes(pod, "usage_compute")


def label(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).strftime("%Y%m%d%H%M")


def test_a_1_dollar_team_after_a_60_minute_outage_is_stopped_where_its_runway_ran_out(
    team, twelve_dollar_gpu, alice
):
    fund(team, "1")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(60) == [team.pk]  # the first tick after an hour without one
    assert status(pod) == Pod.Status.EXITED
    # Minute 0 took the balance under 10 minutes of runway: the last minute charged, as on time.
    assert compute_minutes(pod) == [label(0)]
    assert balance(team) == Decimal("0.80") >= -PER_MINUTE
    write_off = UsageWriteOff.objects.get()
    assert (write_off.team, write_off.source_id, write_off.description) == (
        team,
        pod.public_id,
        "Pod parked",
    )
    assert write_off.minutes == 59
    assert (write_off.first_minute, write_off.last_minute) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=59),
    )
    assert write_off.amount == Decimal("11.80")  # the other 59 shares of $12
    assert len(mail.outbox) == 1 and "pods stopped" in mail.outbox[0].subject
    assert AuditEvent.objects.filter(action="billing.usage.written_off", team=team).count() == 1
    call_command("check_ledger")


def test_the_write_off_is_listed_for_staff(team, twelve_dollar_gpu):
    fund(team, "1")
    running_pod(team, twelve_dollar_gpu["machine"], name="trainer")
    tick(60)
    page = staff().get(reverse("admin:billing_usagewriteoff_changelist")).content.decode()
    assert "Acme" in page and "Pod trainer" in page
    assert ">59<" in page and "$11.80<" in page


def test_a_catch_up_ends_where_ticks_on_time_would_have_stopped_the_pods(team, twelve_dollar_gpu):
    machine = twelve_dollar_gpu["machine"]
    on_time_team = Team.objects.create(name="Punctual", slug="punctual", is_personal=False)
    fund(on_time_team, "3")  # 10 minutes need $2.00: on time, tick 6 stops the pod at $1.80
    on_time = running_pod(on_time_team, machine)
    for minute in range(1, 7):
        tick(minute)
    assert status(on_time) == Pod.Status.EXITED
    fund(team, "3")
    late = running_pod(team, machine)  # metered from T0, its first tick an hour late
    tick(60)
    assert status(late) == Pod.Status.EXITED
    assert balance(team) == balance(on_time_team) == Decimal("1.80")
    assert compute_minutes(late) == compute_minutes(on_time) == [label(m) for m in range(6)]
    assert UsageWriteOff.objects.get(source_id=late.public_id).minutes == 54
    call_command("check_ledger")


def test_a_team_with_credit_is_charged_every_missed_minute(team, twelve_dollar_gpu):
    fund(team, "100")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(60) == []
    assert status(pod) == Pod.Status.RUNNING
    assert charged(pod, "usage_compute") == Decimal("12.00")
    assert not UsageWriteOff.objects.exists()


def test_stopped_pods_and_network_volumes_are_charged_in_full_past_the_line(
    team, twelve_dollar_gpu
):
    parts = twelve_dollar_gpu
    fund(team, "1")
    running_pod(team, parts["machine"])
    parked = stopped_pod(team, parts["machine"], volume_gb=100, metered_until=T0)
    volume = NetworkVolume.objects.create(
        team=team, name="data", size_gb=100, data_center=parts["dc"], metered_until=T0
    )
    tick(60)
    # Low funds never stops those: had metering run on time, all 60 minutes were charged.
    assert charged(parked) == sum(
        period_share(Decimal("20.00"), int(T0.timestamp()) // 60 + m, 30 * 24 * 60)
        for m in range(60)
    )
    assert charged(volume) == sum(
        period_share(Decimal("7.00"), int(T0.timestamp()) // 60 + m, 30 * 24 * 60)
        for m in range(60)
    )
    assert UsageWriteOff.objects.get().minutes == 59  # the running pod only
    call_command("check_ledger")


def test_every_running_pod_of_the_team_stops_being_charged_at_the_same_minute(
    team, twelve_dollar_gpu
):
    fund(team, "5")  # two $12/h pods: $0.40 a minute, 10 minutes need $4.00
    pods = [running_pod(team, twelve_dollar_gpu["machine"]) for _ in range(2)]
    tick(30)
    for pod in pods:
        assert compute_minutes(pod) == [label(m) for m in range(3)]  # $5 → 4.60, 4.20, 3.80
    assert balance(team) == Decimal("3.80")
    assert UsageWriteOff.objects.filter(minutes=27).count() == 2


def test_a_status_change_after_an_outage_settles_by_the_same_rule(team, twelve_dollar_gpu):
    from pods.services import stop_pod

    fund(team, "1")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    with (
        time_machine.travel(T0 + timedelta(minutes=60, seconds=20), tick=False),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        stop_pod(actor=None, pod=pod)  # the user stops it before any tick ran
    assert compute_minutes(pod) == [label(0)]
    assert UsageWriteOff.objects.get().minutes == 59
    assert balance(team) == Decimal("0.80")
    call_command("check_ledger")


def test_a_settlement_by_change_status_writes_off_once_and_charges_nothing_twice(
    team, twelve_dollar_gpu
):
    fund(team, "1")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    with time_machine.travel(T0 + timedelta(minutes=30, seconds=1), tick=False):
        change_status(pod, Pod.Status.EXITED)
        pod.save()
        meter()
    meter(until=T0 + timedelta(minutes=40))
    assert compute_minutes(pod) == [label(0)]
    assert UsageWriteOff.objects.count() == 1
    call_command("check_ledger")


def test_running_the_catch_up_again_changes_nothing(team, twelve_dollar_gpu):
    fund(team, "1")
    running_pod(team, twelve_dollar_gpu["machine"])
    meter(until=T0 + timedelta(minutes=60))
    entries, money = LedgerEntry.objects.count(), balance(team)
    assert meter(until=T0 + timedelta(minutes=60)).entries == 0
    assert (LedgerEntry.objects.count(), balance(team)) == (entries, money)
    assert UsageWriteOff.objects.count() == 1


def test_a_team_whose_pods_were_not_stopped_is_charged_on_after_the_write_off(
    team, twelve_dollar_gpu
):
    # Auto-recharge kept them running (or a human did): later minutes are charged as usual.
    fund(team, "1")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    meter(until=T0 + timedelta(minutes=60))
    fund(team, "100")
    meter(until=T0 + timedelta(minutes=65))
    assert compute_minutes(pod) == [label(0)] + [label(m) for m in range(60, 65)]
    assert balance(team) == Decimal("99.80")  # 1 + 100 - 0.20 - 5 x 0.20
    call_command("check_ledger")


def write_offs_total(team) -> Decimal:
    return UsageWriteOff.objects.filter(team=team).aggregate(total=Sum("amount"))["total"]


@pytest.mark.django_db(transaction=True)
def test_two_catch_ups_at_once_charge_and_write_off_each_minute_once():
    parts = catalogue()
    parts["a40"].secure_price = Decimal("12")
    parts["a40"].save()
    teams = []
    for n in range(6):
        team = Team.objects.create(name=f"Team {n}", slug=f"team-{n}", is_personal=False)
        fund(team, "1")
        teams.append(team)
        for _ in range(3):
            running_pod(team, parts["machine"])
    until = T0 + timedelta(minutes=60)
    run_in_threads(lambda: meter(until=until, batch_size=4), [(), ()])
    for team in teams:
        # $0.60 a minute: minute 0 leaves $0.40, under the $6.00 line.
        assert balance(team) == Decimal("0.40")
        assert write_offs_total(team) == 3 * Decimal("11.80")
    assert UsageWriteOff.objects.count() == 18
    call_command("check_ledger")


@pytest.mark.django_db(transaction=True)
def test_a_catch_up_killed_halfway_loses_its_write_offs_with_its_charges(monkeypatch):
    parts = catalogue()
    parts["a40"].secure_price = Decimal("12")
    parts["a40"].save()
    pods = []
    for n in range(4):
        team = Team.objects.create(name=f"Crashy {n}", slug=f"crashy-{n}", is_personal=False)
        fund(team, "1")
        pods.append(running_pod(team, parts["machine"]))
    real_batch = metering._meter_batch
    calls = []

    def dying_batch(team_ids, **kwargs):
        batch = real_batch(team_ids, **kwargs)
        calls.append(team_ids)
        if len(calls) == 2:
            raise SystemExit("worker killed after charging its batch")
        return batch

    monkeypatch.setattr(metering, "_meter_batch", dying_batch)
    until = T0 + timedelta(minutes=60)
    with pytest.raises(SystemExit):
        meter(until=until, batch_size=2)
    assert UsageWriteOff.objects.count() == 2  # the first batch's, committed
    call_command("check_ledger")
    monkeypatch.setattr(metering, "_meter_batch", real_batch)
    meter(until=until, batch_size=2)
    assert UsageWriteOff.objects.count() == 4
    assert all(charged(pod, "usage_compute") == PER_MINUTE for pod in pods)
    call_command("check_ledger")


def test_the_meter_command_reports_the_minutes_written_off(team, twelve_dollar_gpu, capsys):
    fund(team, "1")
    running_pod(team, twelve_dollar_gpu["machine"])
    with time_machine.travel(T0 + timedelta(minutes=60, seconds=5), tick=False):
        call_command("meter", "--no-enforce")
    out = capsys.readouterr().out
    assert "Wrote off 59 pod minutes (11.8000000000 USD)" in out

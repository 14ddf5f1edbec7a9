"""A pod in `stopping` pays compute only within the stop grace, then what a stopped pod pays;
the reconciler retries a lost halt and staff see pods stuck longer than a minute; low funds
tells a team once per episode, however many ticks find it short."""

from datetime import timedelta
from decimal import Decimal

import time_machine
from django.core import mail
from django.core.management import call_command
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from billing.money import period_share
from pods import funds, lifecycle, metering
from pods.metering import change_status, meter
from pods.models import Pod
from teams.models import AuditEvent
from tests.pods.factories import fund
from tests.pods.test_funds import T0, status, tick
from tests.pods.test_machine_admin import staff
from tests.pods.test_metering import charged, running_pod
from tests.pods.test_outage import billed_minutes, compute_minutes, label

STOPPED_20_GB = Decimal("4.00")  # a month of 20 GB at the stopped rate


def tick_with_the_halt_lost(minute: int) -> None:
    """A tick whose queued halt never runs (the worker lost it, the machine did not answer)."""
    moment = T0 + timedelta(minutes=minute, seconds=5)
    with time_machine.travel(moment, tick=False), TestCase.captureOnCommitCallbacks():
        result = meter()
        funds.enforce(team_ids=result.team_ids)


def fund_at(team, amount: str, minute: int) -> None:
    """Credit that arrives at T0 + `minute` (episodes end on credit received after they began)."""
    with time_machine.travel(T0 + timedelta(minutes=minute), tick=False):
        fund(team, amount)


def storage_minutes(pod) -> list[str]:
    return billed_minutes(pod, "usage_storage")


def test_a_pod_stuck_in_stopping_for_15_minutes_pays_no_compute_past_the_grace_and_one_email(
    team, twelve_dollar_gpu, alice
):
    fund_at(team, "1", 0)
    pod = running_pod(team, twelve_dollar_gpu["machine"], volume_gb=20)
    for minute in range(1, 17):  # stopped by low funds at 10:01:05, stuck until 10:16:05
        tick_with_the_halt_lost(minute)
    assert status(pod) == Pod.Status.STOPPING
    assert compute_minutes(pod) == [label(0)]  # before the stop; none while stopping
    assert charged(pod, "usage_compute") == Decimal("0.20")
    # Minute 1 held the stop (partial: not charged); from minute 2 the stopped rate.
    assert storage_minutes(pod) == [label(0)] + [label(m) for m in range(2, 16)]
    first = int(T0.timestamp()) // 60
    month = 30 * 24 * 60
    assert charged(pod, "usage_storage") == period_share(Decimal("2.00"), first, month) + sum(
        period_share(STOPPED_20_GB, first + m, month) for m in range(2, 16)
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [alice.email]
    assert AuditEvent.objects.filter(action="team.low_funds_stop", team=team).count() == 1
    call_command("check_ledger")


def test_compute_is_charged_for_stopping_minutes_that_end_within_the_deadline(
    team, parts, monkeypatch
):
    fund(team, "100")
    monkeypatch.setattr(metering, "STOP_BILLED_FOR", timedelta(minutes=3))
    pod = running_pod(team, parts["machine"])
    with time_machine.travel(T0 + timedelta(minutes=10, seconds=30), tick=False):
        change_status(pod, Pod.Status.STOPPING)
        pod.save()
    meter(until=T0 + timedelta(minutes=20))
    # Minute 10 is partial; 11 and 12 end by 10:13:30; 13 would end after it.
    assert compute_minutes(pod) == [label(m) for m in (*range(10), 11, 12)]


def test_with_the_real_grace_a_stopping_pod_pays_no_whole_minute_of_compute(team, parts):
    fund(team, "100")
    assert metering.STOP_BILLED_FOR.total_seconds() < 60
    pod = running_pod(team, parts["machine"])
    with time_machine.travel(T0 + timedelta(minutes=10, seconds=59), tick=False):
        change_status(pod, Pod.Status.STOPPING)
        pod.save()
    meter(until=T0 + timedelta(minutes=20))
    assert compute_minutes(pod) == [label(m) for m in range(10)]


def stuck_pod(team, machine, *, for_: timedelta, **fields) -> Pod:
    pod = running_pod(team, machine, status=Pod.Status.STOPPING, **fields)
    Pod.objects.filter(pk=pod.pk).update(status_changed_at=timezone.now() - for_)
    return pod


def test_the_reconciler_retries_a_lost_halt(team, parts):
    pod = stuck_pod(team, parts["machine"], for_=timedelta(minutes=5), next_status="exited")
    lifecycle.reconcile()
    assert status(pod) == Pod.Status.EXITED


def test_a_halt_that_keeps_failing_leaves_the_pod_listed_for_staff_and_the_others_retried(
    team, parts
):
    unreachable = parts["rtx_machine"]
    unreachable.runtime = "docker"
    unreachable.runtime_settings = {"base_url": "unix:///nonexistent/docker.sock", "timeout": 2}
    unreachable.save()
    handle = {"pod_id": "x"}
    failing = stuck_pod(
        team, unreachable, for_=timedelta(minutes=5), name="unreachable", runtime_handle=handle
    )
    recovered = stuck_pod(team, parts["machine"], for_=timedelta(minutes=5), name="recovered")
    fresh = stuck_pod(team, parts["machine"], for_=timedelta(seconds=10), name="just-stopped")
    lifecycle.reconcile()
    assert status(failing) == Pod.Status.STOPPING
    assert status(recovered) == Pod.Status.EXITED
    assert status(fresh) == Pod.Status.STOPPING  # within its minute: not retried yet
    page = staff().get(reverse("admin:pods_pod_changelist") + "?stuck=yes").content.decode()
    assert failing.public_id in page
    assert fresh.public_id not in page and recovered.public_id not in page


def test_a_team_still_short_is_not_told_twice(team, twelve_dollar_gpu):
    fund_at(team, "1", 0)
    running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(1) == [team.pk]
    # A second pod runs (started by staff, say) while the team is as short as before.
    late = running_pod(team, twelve_dollar_gpu["machine"], metered_until=T0 + timedelta(minutes=1))
    assert tick(2) == [team.pk]
    assert status(late) == Pod.Status.EXITED
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="team.low_funds_stop").count() == 1


def test_a_team_funded_again_is_told_the_next_time_it_runs_short(team, twelve_dollar_gpu):
    fund_at(team, "1", 0)
    running_pod(team, twelve_dollar_gpu["machine"])
    tick(1)
    fund_at(team, "2", 2)  # $2.80: 14 minutes at $12/h
    running_pod(team, twelve_dollar_gpu["machine"], metered_until=T0 + timedelta(minutes=2))
    assert tick(2) == []
    assert AuditEvent.objects.filter(action="billing.low_funds.ended", team=team).count() == 1
    stopped_at = next(minute for minute in range(3, 12) if tick(minute))
    assert stopped_at == 7  # $1.80 left: under 10 minutes again
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="team.low_funds_stop").count() == 2

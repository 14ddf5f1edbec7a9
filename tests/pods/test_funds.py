"""Low funds: pods stop when the balance no longer covers 10 minutes, after auto-recharge had
its chance; teams left at zero lose their pods, then their network volumes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from django.core import mail
from django.test import TestCase
from django.urls import reverse

from billing.burn import burn_rate
from billing.models import BillingAccount
from billing.services import can_afford, get_account
from pods import funds
from pods.metering import meter
from pods.models import NetworkVolume, Pod
from pods.services import team_burn_rate
from teams.models import AuditEvent
from tests.billing.test_stripe_emulator import enable_auto_recharge, forward, saved_card
from tests.conftest import login
from tests.pods.factories import fund, stopped_pod
from tests.pods.test_metering import running_pod
from tests.pods.test_wizard import valid

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def tick(minute: int) -> list[int]:
    moment = T0 + timedelta(minutes=minute, seconds=5)
    # What a worker does after commit: run the halt task the stop queued.
    with time_machine.travel(moment, tick=False), TestCase.captureOnCommitCallbacks(execute=True):
        result = meter()
        return funds.enforce(team_ids=result.team_ids)


def status(pod) -> str:
    pod.refresh_from_db()
    return pod.status


def test_a_team_with_1_dollar_and_a_12_dollar_pod_is_stopped_at_the_first_tick(
    team, twelve_dollar_gpu, alice
):
    fund(team, "1")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(1) == [team.pk]
    assert status(pod) == Pod.Status.EXITED  # stopped: volume kept, container disk wiped
    assert "balance no longer covered 10 minutes" in Pod.objects.get(pk=pod.pk).status_reason
    assert AuditEvent.objects.filter(action="team.low_funds_stop", team=team).exists()
    assert mail.outbox[-1].to == [alice.email]
    assert "pods stopped" in mail.outbox[-1].subject


def test_it_stops_pods_at_the_tick_where_less_than_10_minutes_remain(team, twelve_dollar_gpu):
    fund(team, "3")  # $12/h = $0.20/min: 10 minutes need $2.00
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    for minute in range(1, 6):
        assert tick(minute) == []  # $2.80 ... $2.00 left: still 10 minutes
        assert status(pod) == Pod.Status.RUNNING
    assert tick(6) == [team.pk]  # $1.80 left
    assert status(pod) == Pod.Status.EXITED
    assert BillingAccount.objects.get(team=team).balance == Decimal("1.80")


def test_teams_with_enough_credit_are_left_alone(team, twelve_dollar_gpu):
    fund(team, "100")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(1) == []
    assert status(pod) == Pod.Status.RUNNING


def test_auto_recharge_with_a_working_card_keeps_the_pods_running(
    stripe_emulator, team, alice, twelve_dollar_gpu
):
    card = saved_card(stripe_emulator, team, alice)
    fund(team, "1")
    enable_auto_recharge(team, alice, card, threshold="10", amount="50")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(1) == []
    assert status(pod) == Pod.Status.RUNNING
    payment = team.payments.get()
    forward(stripe_emulator, "payment_intent.succeeded", payment.stripe_payment_intent_id)
    assert BillingAccount.objects.get(team=team).balance == Decimal("50.80")
    assert tick(2) == []


def test_a_declined_auto_recharge_does_not_save_the_pods(
    stripe_emulator, team, alice, twelve_dollar_gpu
):
    card = saved_card(stripe_emulator, team, alice, number="4000000000000341")
    fund(team, "1")
    enable_auto_recharge(team, alice, card, threshold="10", amount="50")
    pod = running_pod(team, twelve_dollar_gpu["machine"])
    assert tick(1) == [team.pk]
    assert status(pod) == Pod.Status.EXITED


def test_it_removes_pods_after_the_grace_period_and_network_volumes_after_the_second(
    team, twelve_dollar_gpu, settings, alice
):
    settings.FUNDS_GRACE_DAYS = 7
    settings.FUNDS_NETWORK_VOLUME_GRACE_DAYS = 7
    parts = twelve_dollar_gpu
    pod = running_pod(team, parts["machine"], status=Pod.Status.EXITED, volume_gb=10)
    volume = NetworkVolume.objects.create(
        team=team, name="data", size_gb=10, data_center=parts["dc"], metered_until=T0
    )
    get_account(team)  # the first metering tick creates it
    funds.enforce(now=T0)  # balance 0: depleted from now on
    assert BillingAccount.objects.get(team=team).depleted_since == T0
    funds.enforce(now=T0 + timedelta(days=5))
    assert "will be removed" in mail.outbox[-1].subject
    with TestCase.captureOnCommitCallbacks(execute=True):
        funds.enforce(now=T0 + timedelta(days=7, minutes=1))
    assert status(pod) == Pod.Status.TERMINATED
    assert NetworkVolume.objects.filter(pk=volume.pk).exists()
    funds.enforce(now=T0 + timedelta(days=14, minutes=1))
    assert not NetworkVolume.objects.filter(pk=volume.pk).exists()


def test_credit_ends_the_grace_period(team, twelve_dollar_gpu):
    running_pod(team, twelve_dollar_gpu["machine"], status=Pod.Status.EXITED, volume_gb=10)
    get_account(team)
    funds.enforce(now=T0)
    fund(team, "20")
    funds.enforce(now=T0 + timedelta(days=8))
    account = BillingAccount.objects.get(team=team)
    assert account.depleted_since is None
    assert Pod.objects.filter(team=team).exclude(status=Pod.Status.TERMINATED).exists()


# One burn rate ---------------------------------------------------------------------------


def a_team_with_a_pod_a_parked_volume_and_a_network_volume(team, parts) -> None:
    """$0.79 running + $0.01 parked (36 GB stopped) + $0.25 network volume (3.6 TB) = $1.05/h."""
    running_pod(team, parts["machine"])
    stopped_pod(team, parts["machine"], volume_gb=36, container_disk_gb=0)
    NetworkVolume.objects.create(team=team, name="data", size_gb=3600, data_center=parts["dc"])


def test_billing_the_wizard_and_can_afford_read_one_burn_rate_with_network_volumes(
    team, parts, alice
):
    fund(team, "100")
    a_team_with_a_pod_a_parked_volume_and_a_network_volume(team, parts)
    assert team_burn_rate(team) == burn_rate(team) == Decimal("1.05")
    assert can_afford(team=team, extra_cost_per_hour=0).burn_rate == Decimal("1.05")
    client = login(alice)
    billing_page = client.get(reverse("billing", args=[team.slug])).content.decode()
    assert "$1.05" in billing_page
    review = client.post(
        reverse("pod_deploy", args=[team.slug]), valid(action="refresh", tcp_ports="")
    ).content.decode()
    assert "at $1.8408/h with this pod" in review  # + $0.7908 for the new pod


def test_low_funds_counts_network_volumes_too(team, parts):
    fund(team, "0.17")  # 10 minutes of the pod alone need $0.1317; with everything $0.175
    a_team_with_a_pod_a_parked_volume_and_a_network_volume(team, parts)
    [shortfall] = funds.short_teams([team.pk])
    assert (shortfall.burn, shortfall.needed) == (Decimal("1.05"), Decimal("0.175"))

"""Usage rolls up (issue 12): the balance moves every minute, the ledger gets one row per
resource, kind and hour, every minute is charged exactly once and check_ledger holds at every
point, mid-hour included."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from billing.management.commands.check_ledger import mismatches
from billing.models import BillingAccount, LedgerEntry
from billing.money import QUANTUM, period_share
from billing.usage import open_accruals
from pods.metering import meter
from pods.models import NetworkVolume
from tests.pods.factories import catalogue, fund
from tests.pods.test_metering import T0, charged, running_pod, usage_rows

MONTH = 30 * 24 * 60
FIRST = int(T0.timestamp()) // 60


@pytest.fixture
def parts(db):
    return catalogue()


def storage_shares(monthly: Decimal, minutes: int) -> Decimal:
    return sum((period_share(monthly, FIRST + m, MONTH) for m in range(minutes)), Decimal(0))


def test_a_pod_with_a_volume_running_230_minutes_leaves_8_rows_and_costs_minutes_x_rate(
    team, parts
):
    fund(team, "100")
    pod = running_pod(team, parts["machine"], volume_gb=20)  # $0.79/h, 20 GB at $0.10/month
    for minute in range(1, 181):
        meter(until=T0 + timedelta(minutes=minute))
        assert mismatches() == []
    meter(until=T0 + timedelta(minutes=230))  # the beat was down for 50 minutes
    assert mismatches() == []
    assert usage_rows(pod).count() <= 8
    assert usage_rows(pod).count() == 6  # three hours of compute and storage; the 4th is open
    rate = Decimal("0.79")
    assert charged(pod, "usage_compute") == (230 * rate / 60).quantize(QUANTUM)
    storage = charged(pod, "usage_storage")
    assert storage == storage_shares(Decimal("2.00"), 230)  # what 230 minute rows summed to
    assert abs(storage - 230 * Decimal("2.00") / MONTH) <= QUANTUM
    account = BillingAccount.objects.get(team=team)
    assert account.balance == Decimal("100") - charged(pod)
    call_command("check_ledger")


def test_the_ledger_grows_per_hour_not_per_minute_and_never_by_zero(team, parts):
    fund(team, "100")
    running_pod(team, parts["machine"])  # compute only: no $0 storage rows
    NetworkVolume.objects.create(
        team=team, name="data", size_gb=100, data_center=parts["dc"], metered_until=T0
    )
    for minute in (1, 2, 3, 118, 119, 120, 121):  # on time, then a catch-up, on time again
        meter(until=T0 + timedelta(minutes=minute))
    kinds = sorted(usage_rows().values_list("source_type", "kind"))
    assert kinds == [("network_volume", "usage_storage")] * 2 + [("pod", "usage_compute")] * 2
    assert not LedgerEntry.objects.filter(amount=0).exists()


def test_open_accruals_list_the_current_hour_per_resource_and_kind(team, parts):
    fund(team, "100")
    pod = running_pod(team, parts["machine"], volume_gb=20, name="trainer")
    meter(until=T0 + timedelta(minutes=75))
    lines = {line.kind: line for line in open_accruals(team)}
    assert set(lines) == {"usage_compute", "usage_storage"}
    compute = lines["usage_compute"]
    assert (compute.source_type, compute.source_id) == ("pod", pod.public_id)
    assert (compute.description, compute.hour, compute.minutes) == (
        "Compute, pod trainer",
        T0 + timedelta(hours=1),
        15,
    )
    assert compute.amount == -sum(period_share(Decimal("0.79"), FIRST + m, 60) for m in range(15))
    balance = BillingAccount.objects.get(team=team).balance
    posted = LedgerEntry.objects.filter(team=team).total()
    assert balance == posted + sum(line.amount for line in lines.values())


def test_check_ledger_fails_when_the_open_usage_drifts_from_the_resources(team, parts):
    from django.core.management.base import CommandError

    fund(team, "100")
    running_pod(team, parts["machine"])
    meter(until=T0 + timedelta(minutes=5))
    call_command("check_ledger")
    # Someone moves the watermark back by hand: the resources now claim less than was charged.
    BillingAccount.objects.filter(team=team).update(usage_metered_until=T0 + timedelta(minutes=4))
    with pytest.raises(CommandError, match="1 ledger mismatch"):
        call_command("check_ledger")


def test_a_price_change_mid_hour_applies_from_the_next_minute(team, parts):
    fund(team, "100")
    pod = running_pod(team, parts["machine"])
    meter(until=T0 + timedelta(minutes=10))
    parts["a40"].secure_price = Decimal("1.20")
    parts["a40"].save()
    meter(until=T0 + timedelta(minutes=20))
    expected = sum(period_share(Decimal("0.79"), FIRST + m, 60) for m in range(10)) + sum(
        period_share(Decimal("1.20"), FIRST + m, 60) for m in range(10, 20)
    )
    assert charged(pod) == expected
    call_command("check_ledger")


def test_a_tick_on_time_writes_per_team_not_per_pod(team, parts):
    """The minute's writes: account rows (one per team), never pod or ledger rows."""
    fund(team, "100")
    for _ in range(5):
        running_pod(team, parts["machine"])
    meter(until=T0 + timedelta(minutes=1))  # opens the segments (a write per pod, once)
    with connection.cursor() as cursor:
        cursor.execute("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'pods_pod'")
        before = cursor.fetchone()[0]
    meter(until=T0 + timedelta(minutes=2))
    with connection.cursor() as cursor:
        cursor.execute("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'pods_pod'")
        assert cursor.fetchone()[0] == before
    assert not usage_rows().exists()

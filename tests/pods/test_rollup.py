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
from pods.metering import CLOSE_SPREAD, close_delay, meter
from pods.models import NetworkVolume
from teams.models import Team
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
    # Compute and storage of each hour its team's tick has closed (the hour ends, then its
    # close_delay passes): three hours, or two if the delay is past 50 minutes; the rest open.
    assert usage_rows(pod).count() == 2 * ((230 - close_delay(team.pk).seconds // 60) // 60)
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
    delay = close_delay(team.pk).seconds // 60  # when the team's hours close past the hour
    for minute in (1, 2, 3, 118, 119, 120 + delay, 121 + delay):  # on time, catch-up, on time
        meter(until=T0 + timedelta(minutes=minute))
    kinds = sorted(usage_rows().values_list("source_type", "kind"))
    assert kinds == [("network_volume", "usage_storage")] * 2 + [("pod", "usage_compute")] * 2
    assert not LedgerEntry.objects.filter(amount=0).exists()


def test_open_accruals_list_the_current_hour_per_resource_and_kind(team, parts):
    fund(team, "100")
    pod = running_pod(team, parts["machine"], volume_gb=20, name="trainer")
    delay = close_delay(team.pk).seconds // 60  # the first hour closed, 15 minutes after
    meter(until=T0 + timedelta(minutes=75 + delay))
    lines = {line.kind: line for line in open_accruals(team)}
    assert set(lines) == {"usage_compute", "usage_storage"}
    compute = lines["usage_compute"]
    assert (compute.source_type, compute.source_id) == ("pod", pod.public_id)
    assert (compute.description, compute.hour, compute.minutes) == (
        "Compute, pod trainer",
        T0 + timedelta(hours=1),
        15 + delay,
    )
    shares = (period_share(Decimal("0.79"), FIRST + m, 60) for m in range(15 + delay))
    assert compute.amount == -sum(shares)
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


def test_a_teams_hour_is_posted_by_the_tick_its_delay_after_the_hour(team, parts):
    fund(team, "100")
    pod = running_pod(team, parts["machine"], volume_gb=20)
    delay = close_delay(team.pk).seconds // 60
    for minute in (30, 60, 60 + delay - 1):
        meter(until=T0 + timedelta(minutes=minute))
        assert mismatches() == []
    if delay:  # the hour has ended, its rows wait for the team's minute: open, two hours
        assert not usage_rows(pod).exists()
        hours = {line.hour for line in open_accruals(team)}
        assert hours == ({T0} if delay == 1 else {T0, T0 + timedelta(hours=1)})
    meter(until=T0 + timedelta(minutes=60 + delay))
    assert mismatches() == []
    compute = usage_rows(pod).get(kind="usage_compute")
    assert (compute.amount, compute.period_start) == (Decimal("-0.79"), T0)
    assert compute.period_end == T0 + timedelta(hours=1)
    assert -usage_rows(pod).get(kind="usage_storage").amount == storage_shares(Decimal("2.00"), 60)
    assert {line.hour for line in open_accruals(team)} <= {T0 + timedelta(hours=1)}
    assert charged(pod, "usage_compute") == ((60 + delay) * Decimal("0.79") / 60).quantize(QUANTUM)


def test_each_tick_posts_the_hour_rows_of_a_sixtieth_of_the_teams(parts):
    """Teams with consecutive ids: one team's hour closes at each minute of the next hour."""
    teams = [Team.objects.create(name=f"T{n}", slug=f"t-{n}") for n in range(CLOSE_SPREAD)]
    for team in teams:
        fund(team, "100")
        running_pod(team, parts["machine"])  # compute only: one row an hour
    meter(until=T0 + timedelta(minutes=59))
    posted_at = {}
    for minute in range(60, 120):
        result = meter(until=T0 + timedelta(minutes=minute))
        assert result.entries == 1
        posted_at[usage_rows().latest("id").team_id] = minute - 60
    assert posted_at == {team.pk: close_delay(team.pk).seconds // 60 for team in teams}
    assert mismatches() == []

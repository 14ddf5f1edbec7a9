"""Commissions from real usage (pods.metering on PostgreSQL), credited through the ledger."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import BillingAccount, LedgerEntry
from billing.money import round_cents
from billing.services import post_entry
from pods.metering import change_status, meter
from pods.models import Pod
from referrals.commissions import process
from referrals.models import Commission, CommissionCursor, Referral, TemplateUnlock
from referrals.tasks import process_commissions_task
from teams.models import Membership, Role
from teams.services import convert_to_team
from tests.billing.test_concurrency import run_in_threads
from tests.pods.factories import posted_by
from tests.referrals.conftest import (
    HOUR,
    T0,
    gpu_machine,
    new_account,
    public_template,
    referred,
    running_pod,
    top_up,
)

# A team's hour rows are posted close_delay(team) after the hour (tests/pods/test_rollup.py):
# each test ticks at posted_by(the end of its last hour, its teams), its minutes after open.


def balance(team) -> Decimal:
    return BillingAccount.objects.get(team=team).balance


def personal_team(user):
    return user.memberships.get(team__is_personal=True).team


def test_it_pays_60_dollars_for_20_referred_users_spending_100_dollars_on_pods(alice, programs):
    machine = gpu_machine("5.00")
    teams = []
    for n in range(20):
        teams.append(referred(alice, f"friend{n}@example.com"))
        top_up(teams[-1], "110")  # $100 posted, the open minutes after, and the runway
        running_pod(teams[-1], machine)
    meter(until=posted_by(T0 + 20 * HOUR, *teams))  # 20 h at $5/h = $100 each, one catch-up

    result = process()

    earned = Commission.objects.filter(earner=alice)
    assert earned.count() == 20 * 20  # one usage row per pod and hour: $0.15 each
    assert set(earned.values_list("amount", flat=True)) == {Decimal("0.15")}
    assert earned.total() == Decimal("60.00")
    assert result.total == Decimal("60.00")
    credit = LedgerEntry.objects.get(team=personal_team(alice), kind="referral_commission")
    assert credit.amount == Decimal("60.00")
    assert balance(personal_team(alice)) == Decimal("60.00")
    call_command("check_ledger")


def test_it_pays_18_14_for_20_users_running_a_template_for_a_week_at_054(alice, programs):
    machine = gpu_machine("0.54")
    template = public_template(alice, personal_team(alice))
    # The template's first day of runtime (the creator's own pod) unlocks the program.
    own = running_pod(personal_team(alice), machine, template=template)
    day = posted_by(T0 + 24 * HOUR, personal_team(alice))
    meter(until=day)
    change_status(own, Pod.Status.TERMINATED, at=day)
    own.save()
    teams = []
    for n in range(20):
        teams.append(new_account(f"user{n}@example.com")[1])
        running_pod(teams[-1], machine, template=template, since=T0 + 24 * HOUR)
    meter(until=posted_by(T0 + 24 * HOUR + 168 * HOUR, *teams))

    process()

    earned = Commission.objects.filter(earner=alice, kind="templates")
    spend = sum(earned.values_list("spend", flat=True))
    assert spend == Decimal("1814.40")  # 20 x $0.54 x 168 h
    # 1 % of each $0.54 hour is exactly $0.0054; the total $18.144 shows as $18.14.
    assert earned.total() == Decimal("18.144")
    assert round_cents(earned.total()) == Decimal("18.14")
    credits = LedgerEntry.objects.filter(team=personal_team(alice), kind="referral_commission")
    assert credits.total() == Decimal("18.144")


def test_it_pays_nothing_on_top_ups_without_spend(alice, programs):
    team = referred(alice, "rich@example.com")
    top_up(team, "1000")

    result = process()

    assert result.commissions == 0
    assert not Commission.objects.exists()
    assert not BillingAccount.objects.filter(team=personal_team(alice)).exists()


def test_it_writes_one_commission_per_usage_entry_when_processed_twice(alice, programs):
    team = referred(alice, "friend@example.com")
    running_pod(team, gpu_machine("1.20"))
    meter(until=posted_by(T0 + HOUR, team))
    process()
    # Even with the cursor moved back by hand, the usage entries earn nothing again.
    CommissionCursor.objects.update(position=0)
    again = process()

    assert again.commissions == 0
    assert Commission.objects.count() == 1
    assert balance(personal_team(alice)) == Decimal("0.036")
    assert LedgerEntry.objects.filter(kind="referral_commission").count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_writes_each_commission_once_when_two_runs_race(programs):
    referrer, _ = new_account("racer@example.com")
    team = referred(referrer, "friend@example.com")
    running_pod(team, gpu_machine("1.20"))
    meter(until=posted_by(T0 + HOUR, team))
    first = LedgerEntry.objects.filter(team=team).order_by("id").first()
    CommissionCursor.objects.create(name="commissions", position=first.pk - 1)

    results = run_in_threads(lambda: process(batch_size=10), [(), (), ()])

    assert sum(result.commissions for result in results) == 1
    assert Commission.objects.count() == 1
    assert balance(personal_team(referrer)) == Decimal("0.036")
    call_command("check_ledger")


def test_it_pays_nothing_after_a_program_ended(alice, programs):
    programs["pods"].ends_on = date(2026, 11, 1)  # the day before the usage
    programs["pods"].save()
    team = referred(alice, "late@example.com")
    running_pod(team, gpu_machine("2.00"))
    meter(until=posted_by(T0 + HOUR, team))

    assert process().commissions == 0
    assert not Commission.objects.exists()


def test_it_counts_spend_on_the_last_day_of_a_program(alice, programs):
    programs["pods"].ends_on = T0.date()
    programs["pods"].save()
    team = referred(alice, "just-in-time@example.com")
    running_pod(team, gpu_machine("2.00"))
    meter(until=posted_by(T0 + HOUR, team))

    process()

    assert Commission.objects.filter(earner=alice).total() == Decimal("0.06")


def test_it_pays_5_percent_of_serverless_spend(alice, programs):
    team = referred(alice, "lambda@example.com")
    post_entry(
        team=team,
        amount=Decimal("-10"),
        kind="usage_serverless",
        idempotency_key="endpoint:e1:202611021000",
        description="Serverless endpoint",
        source_type="endpoint",
        source_id="e1",
    )

    process()

    assert Commission.objects.get(earner=alice).amount == Decimal("0.50")


def test_it_ignores_network_volumes_in_pod_spend(alice, programs):
    team = referred(alice, "storage@example.com")
    post_entry(
        team=team,
        amount=Decimal("-4"),
        kind="usage_storage",
        idempotency_key="network_volume:v1:storage:202611021000",
        description="Network volume data",
        source_type="network_volume",
        source_id="v1",
    )

    assert process().commissions == 0


def test_it_stops_paying_once_the_referrer_joins_the_referred_account(alice, programs):
    team = referred(alice, "startup@example.com")
    founder = Referral.objects.get(team=team).referred_user
    convert_to_team(team=team, actor=founder, name="Startup")
    Membership.objects.create(team=team, user=alice, role=Role.DEV)
    running_pod(team, gpu_machine("2.00"))
    meter(until=posted_by(T0 + HOUR, team))

    assert process().commissions == 0


def test_it_pays_no_template_commission_on_the_creators_own_teams(alice, team, programs):
    template = public_template(alice, team)
    running_pod(team, gpu_machine("0.54"), template=template)
    meter(until=posted_by(T0 + 30 * HOUR, team))

    assert process().commissions == 0


def test_it_starts_template_commissions_after_one_day_of_runtime(alice, programs):
    template = public_template(alice, personal_team(alice))
    _, team = new_account("user@example.com")
    running_pod(team, gpu_machine("0.54"), template=template)
    meter(until=posted_by(T0 + 25 * HOUR, team))

    process()

    earned = Commission.objects.filter(earner=alice)
    assert earned.count() == 1  # the 25th hour only
    assert earned.total() == Decimal("0.0054")
    runtime = LedgerEntry.objects.filter(team=team, kind="usage_compute").order_by("id")
    assert TemplateUnlock.objects.get(template=template).entry_id == runtime[23].pk  # 1,440 min


def test_it_reverses_the_commission_of_a_refunded_usage_entry(alice, programs):
    team = referred(alice, "refund@example.com")
    running_pod(team, gpu_machine("6.00"))
    meter(until=posted_by(T0 + 2 * HOUR, team))
    process()
    first, second = LedgerEntry.objects.filter(team=team, kind="usage_compute").order_by("id")
    post_entry(
        team=team,
        amount=-first.amount,
        kind="refund",
        idempotency_key=f"refund:{first.public_id}",
        description="Host went offline",
        source_type="ledger_entry",
        source_id=first.public_id,
    )
    post_entry(
        team=team,
        amount=-second.amount / 2,
        kind="refund",
        idempotency_key=f"refund:{second.public_id}",
        description="Half an hour lost",
        source_type="ledger_entry",
        source_id=second.public_id,
    )

    result = process()

    assert result.reversals == 2
    # $6.00 an hour: 3 % is $0.18 each; all of the first and half of the second go back.
    assert Commission.objects.filter(earner=alice).total() == Decimal("0.09")
    assert balance(personal_team(alice)) == Decimal("0.09")
    debit = LedgerEntry.objects.get(team=personal_team(alice), kind="refund")
    assert debit.amount == Decimal("-0.27")
    assert process().reversals == 0
    call_command("check_ledger")


def test_it_credits_the_team_the_referrer_chose(alice, team, programs):
    from referrals.services import set_payout_team

    set_payout_team(user=alice, team=team)
    friend_team = referred(alice, "friend@example.com")
    running_pod(friend_team, gpu_machine("1.00"))
    meter(until=posted_by(T0 + HOUR, friend_team))

    process()

    assert balance(team) == Decimal("0.03")
    assert Commission.objects.filter(team=team).count() == 1


def test_it_waits_for_in_flight_charges_before_reading_new_entries(alice, programs, settings):
    settings.REFERRAL_COMMIT_LAG_SECONDS = 120
    team = referred(alice, "friend@example.com")
    running_pod(team, gpu_machine("1.00"))
    meter(until=posted_by(T0 + HOUR, team))

    assert process(now=T0 + HOUR).commissions == 0  # seen now, read two minutes later
    assert process(now=T0 + HOUR + timedelta(seconds=30)).commissions == 0
    assert process(now=T0 + HOUR + timedelta(minutes=2)).commissions == 1


def test_the_management_command_processes_commissions(alice, programs, settings):
    settings.REFERRAL_COMMIT_LAG_SECONDS = 120
    team = referred(alice, "friend@example.com")
    running_pod(team, gpu_machine("1.00"))
    meter(until=posted_by(T0 + HOUR, team))

    call_command("process_commissions", "--no-wait")

    assert Commission.objects.filter(earner=alice).total() == Decimal("0.03")


def test_the_beat_task_processes_commissions(alice, programs):
    team = referred(alice, "friend@example.com")
    running_pod(team, gpu_machine("1.00"))
    meter(until=posted_by(T0 + HOUR, team))

    assert process_commissions_task() == 1
    assert process_commissions_task() == 0

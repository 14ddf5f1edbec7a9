"""Serverless billing per second (serverless.metering): worker rows with ready_at/stopped_at
set directly and ticks at chosen instants; amounts checked against per-second shares to the
10th decimal, and check_ledger clean after every step."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.test import TestCase
from rest_framework.test import APIClient

from billing import usage
from billing.burn import burn_rate
from billing.management.commands.check_ledger import mismatches
from billing.models import BillingAccount, LedgerEntry, UsageWriteOff
from billing.money import ZERO, period_share
from pods import funds
from pods.metering import meter
from pods.models import Pod
from referrals.commissions import process
from referrals.models import Commission, Program
from serverless import launch, metering, services
from serverless.metering import meter_workers, settle_worker
from serverless.models import Job, Worker
from teams.models import AuditEvent
from tests.api.test_api_keys import make_key
from tests.billing.test_concurrency import run_in_threads
from tests.pods.factories import catalogue, stopped_pod
from tests.referrals.conftest import referred, top_up
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
# $/h: an A40 at its serverless price (0.79 x 1.5); a second of it is 0.000329166... (shares)
PRICE = Decimal("1.185")


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def seconds_cost(price: Decimal, start: datetime, end: datetime) -> Decimal:
    """The truth the SQL must meet: one period_share of the hour per whole clock second."""
    total = ZERO
    moment = start
    while moment < end:
        hour = moment.replace(minute=0, second=0, microsecond=0)
        total += period_share(price, int((moment - hour).total_seconds()), 3600)
        moment += timedelta(seconds=1)
    return total


def balance(team) -> Decimal:
    return BillingAccount.objects.get(team=team).balance


def spent(team) -> Decimal:
    """What the team's workers cost so far: posted rows and open accruals."""
    posted = sum(worker_rows().filter(team=team).values_list("amount", flat=True), ZERO)
    lines = [line for line in usage.open_accruals(team) if line.source_type == "worker"]
    return -(posted + sum((line.amount for line in lines), ZERO))


def worker_rows():
    return LedgerEntry.objects.filter(kind="usage_serverless").order_by("period_start")


def assert_ledger_clean() -> None:
    assert mismatches() == []


@pytest.fixture
def endpoint(team):
    return an_endpoint(team)  # with $100 of credit


def ready_worker(endpoint, *, ready: datetime, price: Decimal = PRICE, **fields) -> Worker:
    worker, _ = a_worker(endpoint)
    fields.update(ready_at=ready, price=price, state=Worker.State.IDLE)
    Worker.objects.filter(pk=worker.pk).update(**fields)
    worker.refresh_from_db()
    return worker


def test_a_worker_ready_90_5_seconds_across_a_minute_boundary_pays_90_seconds(team, endpoint):
    worker = ready_worker(endpoint, ready=at(seconds=30.5), stopped_at=at(seconds=121))
    meter(until=at(1))  # the pods' tick runs the workers' hook
    # At 10:01:00 it has been ready 29.5 s: 29 whole seconds, 10:00:30 to 10:00:59.
    assert balance(team) == Decimal(100) - seconds_cost(PRICE, at(seconds=30), at(seconds=59))
    assert not worker_rows().exists()
    assert_ledger_clean()
    meter(until=at(2))
    meter(until=at(3))  # past its stop: everything is posted
    expected = seconds_cost(PRICE, at(seconds=30), at(seconds=120))
    assert expected == Decimal("0.0296250000")  # 90 s x $1.185 / 3600
    row = worker_rows().get()
    assert (row.amount, row.period_start, row.period_end) == (-expected, at(0, 30), at(2))
    assert row.idempotency_key == f"worker:{worker.public_id}:compute:20261102100030-20261102100200"
    assert (row.source_type, row.source_id, row.minutes) == ("worker", worker.public_id, 1)
    assert balance(team) == Decimal(100) - expected and spent(team) == expected
    assert_ledger_clean()


def test_3600_seconds_cost_exactly_the_hourly_price_in_one_row(team, endpoint):
    ready_worker(endpoint, ready=at(0))
    for tick in (at(0, 1), at(0, 3), at(1, 7), at(9, 59), at(17, 13)):  # odd pieces
        meter_workers(until=tick)
    [line] = usage.open_accruals(team)
    assert (line.kind, line.hour, line.minutes) == ("usage_serverless", T0, 17)
    assert -line.amount == seconds_cost(PRICE, at(0), at(17, 13))
    assert_ledger_clean()
    for minute in range(18, 60, 7):
        meter_workers(until=at(minute, 11))
    meter_workers(until=at(60))
    row = worker_rows().get()
    assert (row.amount, row.period_start, row.period_end, row.minutes) == (-PRICE, T0, at(60), 60)
    assert usage.open_accruals(team) == []
    assert_ledger_clean()


def test_ticks_run_twice_charge_each_second_once(team, endpoint):
    ready_worker(endpoint, ready=at(0, 10))
    for _ in range(2):
        meter_workers(until=at(5))
        meter(until=at(5))
    assert spent(team) == seconds_cost(PRICE, at(0, 10), at(5))
    assert balance(team) == Decimal(100) - spent(team)
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_charge_each_second_once(team, endpoint):
    workers = [ready_worker(endpoint, ready=at(0, n)) for n in range(6)]
    run_in_threads(lambda: meter_workers(until=at(3), batch_size=2), [()] * 3)
    expected = sum(seconds_cost(PRICE, at(0, n), at(3)) for n in range(6))
    assert spent(team) == expected and balance(team) == Decimal(100) - expected
    assert {w.metered_until for w in Worker.objects.filter(pk__in=[w.pk for w in workers])} == {
        at(3)
    }
    assert_ledger_clean()


class Killed(Exception):
    pass


def test_a_tick_killed_halfway_loses_nothing(team, endpoint, monkeypatch):
    ready_worker(endpoint, ready=at(0))
    meter_workers(until=at(1))

    def die(team_ids) -> None:
        raise Killed  # after the charge and the rows, before the marks move and it commits

    with monkeypatch.context() as patched:
        patched.setattr(usage, "run_balance_hooks_on_commit", die)
        with pytest.raises(Killed):
            meter_workers(until=at(2))
    assert spent(team) == seconds_cost(PRICE, at(0), at(1))
    assert_ledger_clean()
    meter_workers(until=at(2))
    assert spent(team) == seconds_cost(PRICE, at(0), at(2))
    assert_ledger_clean()


def test_initializing_time_is_free(team, endpoint):
    waiting, _ = a_worker(endpoint)  # never ready: nothing at all
    Worker.objects.filter(pk=waiting.pk).update(created_at=T0, price=PRICE)
    ready = ready_worker(endpoint, ready=at(4, 0.25), created_at=T0)
    meter_workers(until=at(10))
    assert spent(team) == seconds_cost(PRICE, at(4), at(10) - timedelta(seconds=1))
    assert Worker.objects.get(pk=waiting.pk).metered_until is None
    assert set(worker_rows().values_list("source_id", flat=True)) == set()
    assert {line.source_id for line in usage.open_accruals(team)} == {ready.public_id}
    assert_ledger_clean()


def test_a_timed_out_job_is_billed_only_up_to_its_timeout(team, endpoint):
    worker = ready_worker(endpoint, ready=at(0))
    with time_machine.travel(at(1), tick=False):
        [job] = submit(endpoint)
        services.claim_jobs(worker=worker, count=1)  # started at 10:01:00, 30 s allowed
    meter(until=at(2))  # the sweep has not timed it out yet: billing stops at the deadline
    assert spent(team) == seconds_cost(PRICE, at(0), at(1, 30))
    assert services.sweep_jobs(now=at(2, 3))["timed_out"] == 1
    # The worker kept the job past the grace: the autoscaler stops it, billed to the timeout.
    launch.stop_worker(worker, "kept a timed-out job", now=at(2, 15), billed_until=at(1, 30))
    meter(until=at(3))
    job.refresh_from_db()
    row = worker_rows().get()
    assert job.status == Job.Status.TIMED_OUT and Worker.objects.get(pk=worker.pk).stopped_at
    assert (row.period_start, row.period_end) == (T0, at(1, 30))
    assert -row.amount == seconds_cost(PRICE, at(0), at(1, 30)) == spent(team)
    assert_ledger_clean()


def submit(endpoint, n: int = 1) -> list[Job]:
    payload = {"input": {}, "policy": {"executionTimeout": 30_000}}
    return [services.submit_job(actor=None, endpoint=endpoint, payload=payload) for _ in range(n)]


def test_hour_rows_are_posted_once_and_the_stop_settles_the_rest(team, endpoint):
    worker = ready_worker(endpoint, ready=at(59, 30))
    for minute in (60, 61, 61, 62):
        meter(until=at(minute))
        assert_ledger_clean()
    hour_10 = worker_rows().get()
    assert (hour_10.period_start, hour_10.period_end) == (at(59, 30), at(60))
    Worker.objects.filter(pk=worker.pk).update(stopped_at=at(62, 10), state=Worker.State.STOPPED)
    settle_worker(worker, at=at(62, 10))
    settle_worker(worker, at=at(62, 10))
    meter(until=at(63))
    assert [(r.period_start, r.period_end) for r in worker_rows()] == [
        (at(59, 30), at(60)),
        (at(60), at(62, 10)),
    ]
    assert spent(team) == seconds_cost(PRICE, at(59, 30), at(62, 10))
    assert usage.open_accruals(team) == []
    assert_ledger_clean()


def test_worker_pods_are_billed_by_serverless_only(team, endpoint):
    parts = catalogue()
    pod = stopped_pod(
        team,
        parts["machine"],
        status=Pod.Status.RUNNING,
        kind=Pod.Kind.WORKER,
        metered_until=T0,
        container_disk_gb=0,
        volume_gb=0,
    )
    ready_worker(endpoint, ready=at(0), pod=pod)
    meter(until=at(5))
    assert not LedgerEntry.objects.filter(source_type="pod").exists()
    assert not [line for line in usage.open_accruals(team) if line.source_type == "pod"]
    assert spent(team) == seconds_cost(PRICE, at(0), at(5))
    # Its burn rate is the worker's price, not the pod's GPU price as well.
    assert burn_rate(team) == PRICE
    assert_ledger_clean()


def test_a_settle_inside_the_stopping_transaction_posts_everything(team, endpoint):
    worker = ready_worker(endpoint, ready=at(0))
    meter_workers(until=at(2))
    with transaction.atomic():
        Worker.objects.filter(pk=worker.pk).update(stopped_at=at(2, 45))
        settle_worker(worker, at=at(2, 45))
    assert (worker.metered_until, worker.posted_until) == (at(2, 45), at(2, 45))
    assert -worker_rows().get().amount == seconds_cost(PRICE, at(0), at(2, 45))
    assert metering.accrual_totals() == {}
    assert_ledger_clean()


# A catch-up after an outage ----------------------------------------------------------------

# $/h: a worker at $1 a minute, so its low-funds line is $10 (10 minutes of it).
DEAR = Decimal(60)


def written_off() -> list[tuple]:
    rows = UsageWriteOff.objects.order_by("first_minute")
    return list(rows.values_list("source_id", "first_minute", "last_minute", "minutes", "amount"))


@pytest.mark.parametrize("by", ["tick", "stop"])
def test_a_catch_up_charges_workers_no_further_than_the_teams_funds_reach(team, endpoint, by):
    """$100, a $60/h worker, metering down from 10:01 to 13:00 (or the worker's stop settled
    then): the balance falls below the $10 line after the catch-up's 90th minute, 11:30, so it
    is charged up to 11:31 and the 89 minutes after are written off, never charged."""
    worker = ready_worker(endpoint, ready=at(0, 30), price=DEAR)
    meter_workers(until=at(1))
    assert balance(team) == Decimal("99.5")
    if by == "tick":
        step = meter_workers(until=at(180))
    else:
        Worker.objects.filter(pk=worker.pk).update(stopped_at=at(180))
        with transaction.atomic():
            settle_worker(worker, at=at(180))
    assert balance(team) == Decimal("9.5")
    assert spent(team) == Decimal("90.5")
    assert written_off() == [(worker.public_id, at(91), at(179), 89, Decimal(89))]
    if by == "tick":
        assert (step.written_off_minutes, step.written_off) == (89, Decimal(89))
    worker.refresh_from_db()
    assert (worker.metered_until, worker.posted_until) == (at(180), at(180))
    periods = list(worker_rows().values_list("period_start", "period_end", "amount"))
    assert periods == [(at(0, 30), at(60), Decimal("-59.5")), (at(60), at(91), Decimal(-31))]
    event = AuditEvent.objects.get(action="billing.usage.written_off")
    assert (event.details["minutes"], event.details["amount"]) == (89, "89.0000000000")
    assert_ledger_clean()
    meter_workers(until=at(180))  # again: nothing more is charged or written off
    assert (balance(team), len(written_off())) == (Decimal("9.5"), 1)
    assert_ledger_clean()


def test_ticks_on_time_never_write_a_worker_off(team, endpoint):
    """Minute by minute the balance may fall below the line (low funds stops the worker then);
    every minute the worker ran is charged."""
    ready_worker(endpoint, ready=at(0), price=DEAR)
    for minute in range(1, 96):
        meter_workers(until=at(minute))
    assert balance(team) == Decimal(5)
    assert written_off() == []
    assert_ledger_clean()


def test_a_catch_up_a_team_can_afford_is_charged_in_full(team, endpoint):
    ready_worker(endpoint, ready=at(0), price=PRICE)
    meter_workers(until=at(1))
    meter_workers(until=at(300))
    assert spent(team) == seconds_cost(PRICE, at(0), at(300)) == Decimal("5.925")
    assert written_off() == []
    assert_ledger_clean()


# Low funds ---------------------------------------------------------------------------------


def worker_on_a_pod(endpoint, *, price: str, ready: datetime) -> Worker:
    """A ready worker in a WORKER pod row (no process: low funds acts on the rows)."""
    machine = catalogue()["machine"]
    pod = stopped_pod(endpoint.team, machine, status=Pod.Status.RUNNING, kind=Pod.Kind.WORKER)
    return ready_worker(endpoint, ready=ready, price=Decimal(price), pod=pod)


def run(api, endpoint):
    body = json.dumps({"input": {"prompt": "hi"}})
    return api.post(f"/v2/{endpoint.public_id}/run", body, content_type="application/json")


@pytest.fixture
def api(team, alice) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(team, alice)[1]}")
    return client


def test_low_funds_stops_the_workers_and_refuses_jobs_until_credit_arrives(team, api, alice):
    with time_machine.travel(T0, tick=False):  # credit before the episode does not end it
        endpoint = an_endpoint(team, funded=False)
        top_up(team, "1")
        worker = worker_on_a_pod(endpoint, price="12", ready=at(0))  # $12/h: 10 min are $2
    assert burn_rate(team) == Decimal(12)
    assert not metering.team_can_run(team)
    with time_machine.travel(at(1, 5), tick=False), TestCase.captureOnCommitCallbacks():
        assert funds.enforce(team_ids=meter().team_ids) == [team.pk]
    worker.refresh_from_db()
    assert worker.state == Worker.State.STOPPED and "10 minutes" in worker.stop_reason
    assert worker.pod.status in (Pod.Status.STOPPING, Pod.Status.TERMINATED)
    stop = AuditEvent.objects.get(action="team.low_funds_stop", team=team)
    assert stop.details["workers"] == [worker.public_id]
    assert "the serverless workers of its endpoints (1)" in mail.outbox[-1].body
    meter(until=at(2))  # the stop settled it (or this tick does): ready until 10:01:05
    assert spent(team) == seconds_cost(Decimal(12), at(0), at(1, 5))
    assert burn_rate(team) == ZERO
    assert_ledger_clean()

    refused = run(api, endpoint)
    assert refused.status_code == 402 and not Job.objects.exists()
    assert "stopped because its balance ran low" in refused.json()["message"]
    with time_machine.travel(at(2), tick=False):
        top_up(team, "50")
        funds.enforce(team_ids=[team.pk])  # funded: the episode ends
    assert run(api, endpoint).status_code == 200 and metering.team_can_run(team)


def test_jobs_are_refused_at_zero_and_below_the_low_funds_line(team, api):
    endpoint = an_endpoint(team, funded=False)
    refused = run(api, endpoint)
    assert refused.status_code == 402
    assert refused.json() == {
        "code": "invalid",
        "message": metering.refusal(team),
        "errors": {},
    }
    assert "balance of $0.00 does not cover 10 minutes" in refused.json()["message"]
    top_up(team, "1.50")
    worker_on_a_pod(endpoint, price="12", ready=at(0))  # needs $2.00 for 10 minutes
    assert run(api, endpoint).status_code == 402
    Worker.objects.update(state=Worker.State.STOPPED, stopped_at=at(0))
    assert run(api, endpoint).status_code == 200


def test_the_autoscaler_may_start_only_a_worker_the_team_can_run_for_10_minutes(team):
    an_endpoint(team, funded=False)
    top_up(team, "5")
    assert metering.team_can_run(team)
    assert metering.team_can_run(team, Decimal("30"))  # $5.00 for 10 minutes
    assert not metering.team_can_run(team, Decimal("30.01"))


# The serverless referral program -----------------------------------------------------------


def test_the_referrer_earns_5_percent_of_the_referred_serverless_spend(alice, settings):
    settings.REFERRAL_COMMIT_LAG_SECONDS = 0
    program = Program.objects.create(
        kind="serverless", name="Serverless", rate=Decimal("0.05"), starts_on=date(2026, 1, 1)
    )
    friend = referred(alice, "friend@example.com")
    endpoint = an_endpoint(friend)
    worker = ready_worker(endpoint, ready=at(0), price=Decimal("2.736"))
    for minute in (1, 30, 60, 61):
        meter(until=at(minute))
    Worker.objects.filter(pk=worker.pk).update(stopped_at=at(80), state=Worker.State.STOPPED)
    settle_worker(worker, at=at(80))
    hours = list(worker_rows().values_list("amount", flat=True))
    assert hours == [Decimal("-2.736"), Decimal("-0.912")]  # 3600 s, then 1200 s at $2.736/h

    process()

    earned = Commission.objects.filter(earner=alice, program=program)
    assert sorted(earned.values_list("amount", flat=True)) == [
        Decimal("0.0456"),
        Decimal("0.1368"),
    ]
    assert earned.total() == Decimal("0.1824")  # 5 % of $3.648
    referrer_team = alice.memberships.get(team__is_personal=True).team
    assert balance(referrer_team) == Decimal("0.1824")
    assert_ledger_clean()


def test_deleting_an_endpoint_posts_its_workers_seconds_first(team, endpoint):
    worker = ready_worker(endpoint, ready=at(0))
    meter_workers(until=at(20))  # 20 minutes charged, not posted yet
    with time_machine.travel(at(20, 30), tick=False):
        services.delete_endpoint(actor=None, endpoint=endpoint)
    assert not Worker.objects.filter(pk=worker.pk).exists()
    row = worker_rows().get()
    assert (row.period_start, row.period_end) == (T0, at(20, 30))
    assert -row.amount == seconds_cost(PRICE, T0, at(20, 30))
    assert_ledger_clean()  # no open seconds left behind by the deleted worker rows

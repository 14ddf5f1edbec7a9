"""Serverless billing: a worker's ready time, per second, at the price fixed at its placement.

What is charged: the whole seconds a worker was ready, from `ready_at` (its first job-take or
ping: initializing time is never billed) to `stopped_at` or now, never past `billed_until` (a
job overran its execution timeout) nor past the deadline of a job it still runs (the sweep
times that job out within seconds; the seconds after the deadline are not the customer's).
The rule: n = the whole seconds of ready time (90.5 s ready is 90 s), laid on the clock from
the second the worker became ready (date_trunc('second', ready_at)), so every charge and
every row covers whole clock seconds. Seconds are telescoping shares of the worker's hourly
`price` (the [a, b) seconds of an hour cost round(price * b / 3600, 10) - round(price * a /
3600, 10), billing.money.period_share), so 3600 seconds at $2.736/h cost exactly $2.736.

How (billing.usage's design, per worker instead of per team): `metered_until` is how far the
worker's seconds are charged into the balance (and `usage_accrued`), `posted_until` how far
they are posted as `usage_serverless` ledger rows. Each metering tick (pods.metering.meter
calls `meter_workers` through its tick hooks: one beat entry, one instant for pods and
workers) takes batches of workers (SKIP LOCKED: a worker being stopped settles itself) and,
per batch in one transaction, charges each one's seconds from `metered_until` to the tick's
instant and posts its hours that have passed (one row per worker and clock hour), moving both
marks in the same transaction: a tick run twice charges nothing twice, a tick killed halfway
rolls back and the next one charges the same seconds. A stopping worker is settled at once
(`settle_worker`, from serverless.launch.stop_worker): everything up to its stop is charged
and posted. Rows of $0 are never written; the open accrual (the seconds between the marks) is
registered with billing.usage, so check_ledger proves it, mid-hour included.

Low funds: the running workers' prices join the team's burn rate (pods.metering.BURN_SQL), so
low funds, runway and can_afford count endpoints; low funds stops a short team's workers
(pods.funds.STOP_HOOKS), `team_can_run` tells the autoscaler not to start new ones and
submit_job refuses new jobs. A catch-up after a metering outage (a worker with more than a
minute to charge) follows the pods' rule (billing.usage, "Funds floor"): the team's workers of
the batch are charged minute by minute in order, after its pods of the same tick; the first
minute after which the balance is below the team's low-funds line is the last one charged, the
later seconds are written off (UsageWriteOff, never charged) and the marks move past them, as
low funds then stops the workers. A tick on time (one minute) never cuts.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing import usage
from billing.burn import burn_rate
from billing.money import ZERO, format_usd, to_money
from billing.services import get_account
from pods.metering import (
    RUNWAY_MINUTES,
    Step,
    funds_floor_sql,
    price_params,
    team_burn_sql,
)
from serverless.models import Endpoint, Job, Worker

WORKERS = Worker._meta.db_table
ENDPOINTS = Endpoint._meta.db_table
JOBS = Job._meta.db_table
STAGE = "serverless_meter_stage"
# Workers per batch (one transaction holding their rows and their teams' accounts).
BATCH_SIZE = 10_000
KIND = "usage_serverless"


def _seconds_from_ready(moment: str) -> str:
    """SQL: the instant `moment` rounded down to the ready clock (whole seconds of ready time
    after date_trunc('second', ready_at)); never before it."""
    seconds = f"CAST(FLOOR(EXTRACT(EPOCH FROM ({moment}) - w.ready_at)) AS BIGINT)"
    # A whole number times an interval: exact (a numeric would be cast to double precision).
    return f"date_trunc('second', w.ready_at) + GREATEST(0, {seconds}) * interval '1 second'"


# How far a worker may be charged at the instant %(until)s: its stop, billed_until, the
# deadline of a job it still runs (LEAST skips NULLs).
_CAP = f"""LEAST(%(until)s, w.stopped_at, w.billed_until, (
    SELECT MIN(j.started_at + j.execution_timeout * interval '1 second') FROM {JOBS} j
    WHERE j.worker_id = w.id AND j.status = 'IN_PROGRESS'))"""
_FINAL = "LEAST(w.stopped_at, w.billed_until)"
# Whether the worker counts in its team's burn rate (burn_sql).
_BURNING = "w.stopped_at IS NULL AND w.state NOT IN ('stopped', 'throttled') AND w.price <> 0"
# Workers with seconds to charge or post: live ones, and ended ones not posted to their end.
_CANDIDATES = f"""w.ready_at IS NOT NULL AND w.price <> 0 AND (
    {_FINAL} IS NULL OR w.posted_until IS NULL
    OR w.posted_until < {_seconds_from_ready(_FINAL)})"""


def _stage_sql(*, only_one: bool, skip_locked: bool) -> str:
    """(id, team_id, source_id, name, c, ca, cb, pa, pb) for the next batch of workers:
    charge [ca, cb), post [pa, pb); their rows locked."""
    which = "w.id = %(id)s" if only_one else "w.id > %(after)s"
    lock = "FOR UPDATE OF w SKIP LOCKED" if skip_locked else "FOR UPDATE OF w"
    return f"""
        SELECT s.*, CASE WHEN s.done THEN s.cb
                         ELSE GREATEST(s.pa, date_trunc('hour', s.cb)) END AS pb
        FROM (
            SELECT w.id, e.team_id, w.public_id AS source_id, e.name, w.price AS c,
                   COALESCE(w.metered_until, date_trunc('second', w.ready_at)) AS ca,
                   GREATEST(COALESCE(w.metered_until, date_trunc('second', w.ready_at)),
                            {_seconds_from_ready(_CAP)}) AS cb,
                   COALESCE(w.posted_until, date_trunc('second', w.ready_at)) AS pa,
                   %(settle)s OR COALESCE({_FINAL} <= %(until)s, false) AS done,
                   {_BURNING} AS burning
            FROM {WORKERS} w JOIN {ENDPOINTS} e ON e.id = w.endpoint_id
            WHERE {_CANDIDATES} AND {which}
            ORDER BY w.id LIMIT %(size)s {lock}
        ) AS s
    """


def _pieces_sql(source: str, start: str, end: str, step: str = "hour") -> str:
    """Each worker's seconds [start, end) of `source` cut at clock hours (or minutes), priced:
    the source's columns, h (the hour), m (the piece's hour or minute), sa and sb (the
    piece), amount (positive) and seconds."""
    pieces = f"""
        SELECT x.*, date_trunc('hour', g.m) AS h, g.m, GREATEST(x.{start}, g.m) AS sa,
               LEAST(x.{end}, g.m + interval '1 {step}') AS sb
        FROM ({source}) AS x CROSS JOIN LATERAL generate_series(
            date_trunc('{step}', x.{start}), x.{end} - interval '1 second', interval '1 {step}'
        ) AS g(m)
        WHERE x.{end} > x.{start}
    """
    return f"""
        SELECT q.*, ROUND(q.c * q.ib / 3600, 10) - ROUND(q.c * q.ia / 3600, 10) AS amount,
               q.ib - q.ia AS seconds
        FROM (SELECT k.*, CAST(EXTRACT(EPOCH FROM k.sa - k.h) AS INTEGER) AS ia,
                     CAST(EXTRACT(EPOCH FROM k.sb - k.h) AS INTEGER) AS ib
              FROM ({pieces}) AS k) AS q
    """


def _label(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS')"


def _description(alias: str) -> str:
    return f"'Serverless worker ' || {alias}.source_id || ', endpoint ' || {alias}.name"


def _rows_sql(pieces: str) -> str:
    """billing.usage.USAGE_COLUMNS: one row per worker and clock hour (`minutes`: the whole
    minutes of its seconds; the period gives them exactly)."""
    period = f"{_label('a.sa')} || '-' || {_label('a.sb')}"
    return f"""
        SELECT a.team_id, -a.amount AS amount, '{KIND}' AS kind,
               'worker:' || a.source_id || ':compute:' || {period} AS idempotency_key,
               'worker' AS source_type, a.source_id, {_description("a")} AS description,
               a.sa AS period_start, a.sb AS period_end, a.seconds / 60 AS minutes
        FROM ({pieces}) AS a
    """


def _charges_sql(pieces: str) -> str:
    return f"SELECT a.team_id, -a.amount AS amount FROM ({pieces}) AS a"


# The tick and the settlement --------------------------------------------------------------


def meter_workers(*, until: datetime, batch_size: int = BATCH_SIZE) -> Step:
    """Charge every worker's seconds up to `until` and post its passed hours (the tick hook of
    pods.metering.meter); returns what was written, for the tick's report and low funds."""
    total = Step()
    after = 0
    while True:
        with transaction.atomic():
            params = {"until": until, "after": after, "size": batch_size, "settle": False}
            step, last = _meter_batch(params, only_one=False)
        if last is None:
            return total
        total.entries += step.entries
        total.total += step.total
        total.written_off_minutes += step.written_off_minutes
        total.written_off += step.written_off
        total.charged_teams.update(step.charged_teams)
        after = last


def settle_worker(worker: Worker, *, at: datetime | None = None) -> None:
    """Charge and post all the worker's seconds up to `at` (default now), capped by its stop
    and billed_until. serverless.launch.stop_worker calls it in its transaction, once the
    worker's stopped_at (and billed_until) are saved; it waits for a tick holding the row."""
    at = at or timezone.now()
    with transaction.atomic():
        params = {"until": at, "id": worker.pk, "size": 1, "settle": True}
        _meter_batch(params, only_one=True)
    marks = Worker.objects.values_list("metered_until", "posted_until").get(pk=worker.pk)
    worker.metered_until, worker.posted_until = marks


def _meter_batch(params: dict, *, only_one: bool) -> tuple[Step, int | None]:
    """One transaction's work: stage the workers, charge and post them through billing.usage,
    move their marks. Returns what was written and the last worker id (None: no workers)."""
    step = Step()
    stage = _stage_sql(only_one=only_one, skip_locked=not only_one)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # generate_series looks like 1,000 rows to plan
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} AS {stage}", params)
        cursor.execute(f"ALTER TABLE {STAGE} ADD COLUMN wb timestamptz")
        cursor.execute(f"SELECT MAX(id) FROM {STAGE}")
        last = cursor.fetchone()[0]
    if last is not None:
        _cut_at_floor()
        source = f"SELECT * FROM {STAGE}"
        step.posted(
            usage.apply_usage(
                charges_sql=_charges_sql(_pieces_sql(source, "ca", "cb")),
                rows_sql=_rows_sql(_pieces_sql(source, "pa", "pb")),
                created_at=timezone.now(),
            )
        )
        _write_off(step)
        usage.run_balance_hooks_on_commit(sorted(step.charged_teams))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {WORKERS} w SET metered_until = COALESCE(s.wb, s.cb), "
            f"posted_until = COALESCE(s.wb, s.pb) FROM {STAGE} s WHERE w.id = s.id"
        )
        cursor.execute(f"DROP TABLE {STAGE}")
    return step, last


# The funds floor of a catch-up (billing.usage, "Funds floor") ----------------------------

_CATCHING_UP = f"SELECT team_id FROM {STAGE} WHERE cb - ca > interval '1 minute'"


def _cut_points_sql() -> str:
    """(team_id, k) for each team of the batch catching up whose balance, charged its workers'
    minutes in order, first falls below its low-funds line in the minute before k."""
    minutes = _pieces_sql(
        f"SELECT * FROM {STAGE} WHERE team_id IN ({_CATCHING_UP})", "ca", "cb", "minute"
    )
    # The line counts the batch's stopped workers too: a worker stopped after the outage (its
    # stop settling now) is charged as it ran, as its price counted when it ran.
    stopped = f"SELECT team_id, SUM(c) AS per_hour FROM {STAGE} WHERE NOT burning GROUP BY 1"
    burn = team_burn_sql("{team_id} IN (" + _CATCHING_UP + ")")
    floors = (
        f"SELECT team_id, {funds_floor_sql('SUM(per_hour)')} AS floor "
        f"FROM ({burn} UNION ALL {stopped}) AS burn GROUP BY team_id"
    )
    return f"""
        WITH path AS (
            SELECT a.team_id, a.m, SUM(a.amount) AS cost FROM ({minutes}) AS a
            GROUP BY a.team_id, a.m
        )
        SELECT team_id, MIN(m) + interval '1 minute' AS k FROM (
            SELECT path.team_id, path.m, f.floor, acc.balance - SUM(path.cost) OVER (
                PARTITION BY path.team_id ORDER BY path.m) AS balance_after
            FROM path JOIN ({floors}) AS f ON f.team_id = path.team_id
            JOIN {usage.ACCOUNTS} acc ON acc.team_id = path.team_id
        ) AS walk
        WHERE balance_after < floor GROUP BY team_id
    """


def _cut_at_floor() -> None:
    """Stop the charge and the posting of the cut teams' workers at k (never before what they
    were charged already); wb keeps how far they would have gone, for the write-off."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS ({_CATCHING_UP})")
        if not cursor.fetchone()[0]:
            return
        cursor.execute(
            f"""
            UPDATE {STAGE} s SET wb = s.cb, cb = GREATEST(s.ca, c.k), pb = GREATEST(s.ca, c.k)
            FROM ({_cut_points_sql()}) AS c WHERE c.team_id = s.team_id AND c.k < s.cb
            """,
            price_params(),
        )


def _write_off(step: Step) -> None:
    """One write-off per cut worker: its seconds [cb, wb) (minutes: the minutes begun)."""
    pieces = _pieces_sql(f"SELECT * FROM {STAGE} WHERE wb IS NOT NULL", "cb", "wb")
    select = f"""
        SELECT a.team_id, 'worker' AS source_type, a.source_id,
               MIN({_description("a")}) AS description, MIN(a.sa) AS first_minute,
               date_trunc('minute', MAX(a.sb) - interval '1 second') AS last_minute,
               CAST(CEIL(SUM(a.seconds) / 60.0) AS INTEGER) AS minutes,
               SUM(a.amount) AS amount
        FROM ({pieces}) AS a GROUP BY a.team_id, a.source_id HAVING SUM(a.amount) > 0
    """
    minutes, amount = usage.write_off(select_sql=select, params={}, created_at=timezone.now())
    step.written_off_minutes += minutes
    step.written_off += amount


# Open accruals (billing.usage.AccrualProvider) ---------------------------------------------

_OPEN = f"""
    SELECT w.id, e.team_id, w.public_id AS source_id, e.name, w.price AS c,
           w.posted_until AS pa, w.metered_until AS cb
    FROM {WORKERS} w JOIN {ENDPOINTS} e ON e.id = w.endpoint_id
    WHERE w.metered_until > w.posted_until
"""


def accrual_totals() -> dict[int, Decimal]:
    """{team id: the workers' charged, unposted seconds} (negative, as the rows they become)."""
    pieces = _pieces_sql(_OPEN, "pa", "cb")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"SELECT team_id, -SUM(amount) FROM ({pieces}) AS a GROUP BY team_id")
        return {team_id: total for team_id, total in cursor.fetchall() if total}


def accrual_lines(team) -> list[usage.OpenAccrual]:
    """One statement (the billing pages' query counts): a team's few workers plan cheaply, so
    no savepoint to turn JIT off as the totals over every worker need."""
    pieces = _pieces_sql(f"{_OPEN} AND e.team_id = %(team)s", "pa", "cb")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT source_id, {_description("a")}, h, -SUM(amount), SUM(seconds) / 60
            FROM ({pieces}) AS a WHERE amount <> 0 GROUP BY source_id, name, h
            """,
            {"team": team.pk},
        )
        return [
            usage.OpenAccrual(KIND, "worker", source_id, description, hour, amount, minutes)
            for source_id, description, hour, amount, minutes in cursor.fetchall()
        ]


ACCRUALS = usage.AccrualProvider(totals=accrual_totals, lines=accrual_lines)


# Burn rate and low funds -------------------------------------------------------------------


def burn_sql(scope: str) -> str:
    """(team_id, per_hour) of the workers that hold a machine (pods.metering.BURN_SQL): every
    worker not stopped or throttled, at its price, for the teams matching `scope` (an SQL
    condition on `{team_id}`)."""
    return (
        f"SELECT e.team_id, w.price AS per_hour FROM {WORKERS} w "
        f"JOIN {ENDPOINTS} e ON e.id = w.endpoint_id "
        f"WHERE {_BURNING} AND {scope.format(team_id='e.team_id')}"
    )


def funds_line(team, extra_per_hour: Decimal = ZERO) -> tuple[Decimal, Decimal]:
    """(balance, the low-funds line: RUNWAY_MINUTES of the team's burn rate plus `extra`)."""
    burn = burn_rate(team) + to_money(extra_per_hour)
    return get_account(team).balance, to_money(burn * RUNWAY_MINUTES / 60)


def refusal(team, extra_per_hour: Decimal = ZERO) -> str:
    """Why the team may not run (more) serverless work now, or "": its balance is at or below
    zero, or below RUNWAY_MINUTES of what it runs plus `extra_per_hour`, or low funds stopped
    its pods and it has not been funded since (pods.funds ends the episode)."""
    balance, line = funds_line(team, extra_per_hour)
    if get_account(team).low_funds_since is not None:
        return (
            "This team's pods and workers were stopped because its balance ran low: add "
            "credit to send jobs."
        )
    if balance <= 0 or balance < line:
        return (
            f"Your balance of {format_usd(balance)} does not cover {RUNWAY_MINUTES} minutes "
            f"of this team's pods and workers ({format_usd(line, 4)}): add credit to send jobs."
        )
    return ""


def team_can_run(team, extra_per_hour: Decimal = ZERO) -> bool:
    """May the team's endpoints take jobs and start workers (`refusal` says why not)? The
    autoscaler passes the price of the worker it would start as `extra_per_hour`, so it never
    starts one that low funds would stop at the next tick."""
    return not refusal(team, extra_per_hour)


def stop_team_workers(team, reason: str) -> list[str]:
    """Stop every live worker of the team (pods.funds.STOP_HOOKS: low funds); their pods
    are terminated by serverless.launch and their seconds settled. Returns their ids."""
    from serverless.launch import stop_worker

    live = Worker.objects.filter(endpoint__team=team, stopped_at=None).exclude(
        state=Worker.State.STOPPED
    )
    stopped = []
    for worker in live.order_by("pk"):
        stop_worker(worker, reason)
        stopped.append(worker.public_id)
    return stopped

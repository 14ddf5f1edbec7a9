"""Metering ticks for N running pods, against bare SQL doing the same writes, in one run.

    ./scripts/bench.sh bench/metering.py [--sizes 10000,100000,1000000] [--balance 1000]
                                         [--catch-up 60]

(scripts/bench.sh starts a throwaway PostgreSQL and sets DATABASE_URL; with your own, run
`DATABASE_URL=postgres://.../postgres python bench/metering.py`: it works in a database of its
own, bench_metering_<pid>, dropped at the end.) For each size it builds that many running pods
(one A40 each, a 20 GB volume and a 10 GB container disk, ten pods a team, each team with
`--balance` dollars) with set-based INSERTs (generate_series), then runs a first tick that
starts metering them and three timed ticks around an hour boundary:

    10:59 (first)   11:00   11:01   11:02

Each timed tick is `pods.metering.meter(until=...)`; before it, the same writes done by bare
SQL (MINUTE_SQL, and HOUR_SQL for the teams whose hour closes) are timed in a transaction that
is rolled back, so both start from the same state. It prints one line a size:

    <N> pods, <T> teams: slowest tick <s>, bare SQL <s>, <ratio>x, <rows> ledger rows; ticks
    <s>, <s>, <s> s; <rows> ledger rows per simulated day (<rows> per resource per hour)
    [; catch-up of <M> minutes ...]

Every tick closes the hour of the teams whose minute it is (pods.metering.close_delay: team id
mod 60 minutes after the hour, ~1/60 of the teams), so no tick is the hour-closing one; the
line gives the slowest timed tick against its bare SQL, and each tick's time. Rows per
simulated day = 1440 x the timed ticks' mean rows; a resource is a pod's compute or its
storage.
`--catch-up M` then times one tick M minutes late (with `--balance 1`, teams short of funds:
the line says how many pod minutes it wrote off; the bare SQL charges every minute, so that
ratio is not like for like). Progress goes to stderr.
"""

# ruff: noqa: E402 (sys.path is fixed before any import that may import `queue`)
import os
import sys

# Run as a file, bench/ comes first on sys.path, where bench/queue.py would shadow the standard
# library's `queue` (psycopg imports it): the project's root takes its place, as in queue.py.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.join(ROOT, "bench"):
    sys.path[0] = ROOT

import argparse
import time
from datetime import UTC, datetime, timedelta

from bench.scratch_db import scratch_database

FIRST = datetime(2026, 11, 2, 10, 58, tzinfo=UTC)  # metering starts here
TICKS = [FIRST + timedelta(minutes=n) for n in (1, 2, 3, 4)]  # 10:59 (first), 11:00 .. 11:02
PODS_PER_TEAM = 10
STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def sql(statement: str, params=None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def scalar(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()[0]


def clone(model, template_pk: int, count: int, overrides: dict[str, str]) -> None:
    """`count` copies of one row made through the ORM (so every Django default is filled in),
    in one INSERT ... SELECT over generate_series; `overrides` gives SQL for some columns in
    terms of g (1..count). Every unique column must be overridden."""
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    unique = {f.column for f in model._meta.concrete_fields if f.unique and not f.primary_key}
    if missing := unique - overrides.keys():
        raise SystemExit(f"clone({model.__name__}): unique columns need overrides: {missing}")
    names = ", ".join(f'"{column}"' for column in columns)
    values = ", ".join(overrides.get(column, f't."{column}"') for column in columns)
    table = model._meta.db_table
    sql(
        f"INSERT INTO {table} ({names}) SELECT {values} "
        f"FROM {table} t, generate_series(1, %s) AS g WHERE t.id = %s",
        [count, template_pk],
    )


def build(pods: int, balance: int) -> int:
    """Teams with accounts and running pods, set-based; returns the number of teams."""
    from billing.models import BillingAccount
    from pods.models import Pod
    from teams.models import Team
    from tests.pods.factories import catalogue

    parts = catalogue()
    teams = -(-pods // PODS_PER_TEAM)
    model_team = Team.objects.create(name="bench model", slug="bench-model", is_personal=False)
    clone(Team, model_team.pk, teams, {"name": "'bench ' || g", "slug": "'bench-' || g"})
    first_team = scalar(
        "SELECT MIN(id) FROM teams_team WHERE slug LIKE 'bench-%%' AND id > %s", [model_team.pk]
    )
    model_account = BillingAccount.objects.create(
        team=model_team, balance=balance, paid_total=balance
    )
    clone(BillingAccount, model_account.pk, teams, {"team_id": f"{first_team} + g - 1"})
    progress(f"{teams} teams with ${balance} each")
    model_pod = Pod.objects.create(
        team=model_team,
        name="model",
        public_id="bmodel",
        machine=parts["machine"],
        cloud_type="SECURE",
        gpu_type=parts["a40"],
        gpu_count=1,
        requested_gpu_count=1,
        vcpu=8,
        memory_gb=32,
        image="img",
        container_disk_gb=10,
        volume_gb=20,
        status=Pod.Status.TERMINATED,
        metered_until=FIRST,
    )
    team_of_pod = f"{first_team} + (g - 1) / {PODS_PER_TEAM}"
    clone(
        Pod,
        model_pod.pk,
        pods,
        {
            "public_id": "'b' || lpad(g::text, 13, '0')",
            "name": "'pod ' || g",
            "team_id": team_of_pod,
            "status": "'running'",
        },
    )
    progress(f"{pods} running pods")
    sql("VACUUM ANALYZE")
    return teams


# The writes a tick makes, as few plain statements, from the same state (pods.metering, the
# design in billing.usage): every minute, one UPDATE of the accounts moving balance, accrual
# and watermark by what the team's running pods cost for the minute (an aggregate over the
# pods, at the rates their segments were opened with); and the hour rows of the teams whose
# closing minute this is (pods.metering.close_delay: team id mod 60 minutes after the hour),
# one per pod and kind, appended, the accruals they post taken off, the pods' segments moved
# on. A segment is closed in one row, so this is like for like for ticks up to an hour late.
MINUTE_SQL = """
    UPDATE billing_billingaccount a SET balance = a.balance + s.amount,
        usage_accrued = a.usage_accrued + s.amount, usage_metered_until = %(until)s
    FROM (SELECT team_id, -SUM(ROUND(meter_compute * %(minutes)s / 60, 10)
                               + ROUND(meter_storage_running * %(minutes)s / 43200, 10)) AS amount
          FROM pods_pod WHERE status = 'running' GROUP BY team_id) s
    WHERE a.team_id = s.team_id
"""
CLOSE_AT = "date_trunc('hour', %(until)s - MOD(p.team_id, 60) * interval '1 minute')"
HOUR_SQL = [
    f"""
    CREATE TEMPORARY TABLE bench_rows ON COMMIT DROP AS
    SELECT p.id, p.team_id, p.public_id, p.name, p.metered_until AS period_start, c.b, k.kind,
        k.amount, CAST(EXTRACT(EPOCH FROM c.b - p.metered_until) AS INTEGER) / 60 AS minutes
    FROM pods_pod p CROSS JOIN LATERAL (SELECT {CLOSE_AT} AS b) AS c
    CROSS JOIN LATERAL (VALUES
        ('usage_compute', -ROUND(p.meter_compute
            * (EXTRACT(EPOCH FROM c.b - p.metered_until) / 60) / 60, 10)),
        ('usage_storage', -ROUND(p.meter_storage_running
            * (EXTRACT(EPOCH FROM c.b - p.metered_until) / 60) / 43200, 10)))
        AS k(kind, amount)
    WHERE p.status = 'running' AND p.metered_until < {CLOSE_AT}
    """,
    """
    INSERT INTO billing_ledgerentry (public_id, team_id, amount, balance_after, kind,
        idempotency_key, source_type, source_id, description, period_start, period_end,
        minutes, created_at)
    SELECT 'u' || lpad(to_hex(nextval('billing_ledgerentry_usage_seq')), 13, '0'), r.team_id,
        r.amount, a.balance, r.kind,
        'pod:' || r.public_id || ':' || r.kind || ':'
            || to_char(r.period_start AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI') || '-'
            || to_char(r.b AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI'),
        'pod', r.public_id,
        CASE r.kind WHEN 'usage_compute' THEN 'Compute, pod ' ELSE 'Storage, pod ' END || r.name,
        r.period_start, r.b, r.minutes, now()
    FROM bench_rows r JOIN billing_billingaccount a ON a.team_id = r.team_id
    ORDER BY r.team_id, r.period_start
    ON CONFLICT (idempotency_key) DO NOTHING
    """,
    """
    UPDATE billing_billingaccount a SET usage_accrued = a.usage_accrued - s.total
    FROM (SELECT team_id, SUM(amount) AS total FROM bench_rows GROUP BY team_id) s
    WHERE a.team_id = s.team_id
    """,
    """
    UPDATE pods_pod p SET metered_until = r.b
    FROM (SELECT DISTINCT id, b FROM bench_rows) r WHERE p.id = r.id
    """,
]


def bare_statements(since: datetime, until: datetime) -> list[tuple[str, dict]]:
    """A tick from `since` to `until` charges those minutes and closes the hours of the teams
    whose closing minute has come."""
    minutes = int((until - since).total_seconds()) // 60
    params = {"until": until, "minutes": minutes}
    return [(MINUTE_SQL, params)] + [(statement, params) for statement in HOUR_SQL]


def usage_rows() -> int:
    return scalar("SELECT COUNT(*) FROM billing_ledgerentry WHERE kind LIKE 'usage_%%'")


def time_bare_sql(since: datetime, until: datetime) -> float:
    """In one transaction with the tick's own settings (no JIT, its work_mem), so that the bare
    SQL stays the floor of the same work."""
    from django.db import connection, transaction

    from pods.metering import BATCH_SETTINGS

    started = time.perf_counter()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for setting in BATCH_SETTINGS:
                cursor.execute(setting)
            for statement, params in bare_statements(since, until):
                cursor.execute(statement, params)
            elapsed = time.perf_counter() - started
            raise _RolledBack
    except _RolledBack:
        pass
    sql("VACUUM ANALYZE")
    return elapsed


class _RolledBack(Exception):
    """Leaves the bare statements' transaction without committing it."""


def time_tick(until: datetime) -> tuple[float, int, int]:
    """Seconds, ledger rows written and pod minutes written off by the tick to `until`."""
    from pods.metering import meter

    before = usage_rows()
    started = time.perf_counter()
    result = meter(until=until)
    elapsed = time.perf_counter() - started
    return elapsed, usage_rows() - before, result.written_off_minutes


def timed_tick(since: datetime, until: datetime) -> tuple[float, float, int, int]:
    bare = time_bare_sql(since, until)
    tick, rows, written_off = time_tick(until)
    progress(f"tick to {until:%H:%M}: {tick:.2f} s, bare SQL {bare:.2f} s, {rows} rows")
    return tick, bare, rows, written_off


def run_size(pods: int, balance: int, catch_up: int) -> str:
    reset()
    teams = build(pods, balance)
    first, rows, _ = time_tick(TICKS[0])
    progress(f"first tick {first:.1f} s ({rows} ledger rows)")
    measured = [timed_tick(since, until) for since, until in zip(TICKS, TICKS[1:], strict=False)]
    slowest = max(measured, key=lambda m: m[0])
    per_day = 24 * 60 * sum(m[2] for m in measured) // len(measured)
    per_resource_hour = per_day / (2 * pods * 24)
    line = (
        f"{pods} pods, {teams} teams: slowest tick {_timed(slowest)}; ticks "
        + ", ".join(f"{m[0]:.2f}" for m in measured)
        + f" s; {per_day} ledger rows per simulated day "
        f"({per_resource_hour:.2f} per resource per hour)"
    )
    if catch_up:
        late = timed_tick(TICKS[-1], TICKS[-1] + timedelta(minutes=catch_up))
        line += f"; catch-up of {catch_up} minutes {_timed(late)}"
    return line


def _timed(measured: tuple[float, float, int, int]) -> str:
    tick, bare, rows, written_off = measured
    cut = f" ({written_off} pod minutes written off)" if written_off else ""
    return f"{tick:.2f} s{cut}, bare SQL {bare:.2f} s, {tick / bare:.1f}x, {rows} ledger rows"


def reset() -> None:
    sql(
        "TRUNCATE billing_ledgerentry, billing_usagewriteoff, billing_billingaccount, pods_pod, "
        "pods_podevent, pods_machine, pods_gputype, pods_cpuinstancetype, pods_datacenter, "
        "teams_team RESTART IDENTITY CASCADE"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated pod counts")
    parser.add_argument("--balance", type=int, default=1000, help="each team's dollars")
    parser.add_argument(
        "--catch-up", type=int, default=0, help="then time a catch-up of this many minutes"
    )
    args = parser.parse_args()
    with scratch_database("metering.py", "bench_metering"):
        for size in (int(size) for size in args.sizes.split(",")):
            progress(f"size {size}")
            print(run_size(size, args.balance, args.catch_up), flush=True)


if __name__ == "__main__":
    main()

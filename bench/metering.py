"""One metering tick for N running pods, against bare SQL doing the same writes, in one run.

    ./scripts/bench.sh bench/metering.py [--sizes 10000,100000,1000000] [--minutes 60]
                                         [--balance 1]

(scripts/bench.sh starts a throwaway PostgreSQL and sets DATABASE_URL; with your own, run
`DATABASE_URL=postgres://... python bench/metering.py`.) For each size it creates that many
running pods (one GPU, a 20 GB volume, a 10 GB container disk; ten pods a team), times
`pods.metering.meter()` for one minute (two ledger rows a pod: compute and storage), or for
`--minutes` of catch-up, then undoes the writes and times three bare statements producing the
same rows, balances and marks: one INSERT ... SELECT ... ON CONFLICT into the ledger, one UPDATE
of the accounts from an aggregate, one UPDATE of the pods. It prints one line a size, ending
with the ratio:

    100000 pods: tick 1.9 s, bare SQL 0.8 s, 2.4x

Each team starts with $1000 (`--balance`): with little, a catch-up stops charging each team
where its funds run low and writes the rest off, and the line says how many minutes it wrote
off (the bare SQL still writes every minute, so its ratio is not like for like).
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINUTE = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
PODS_PER_TEAM = 10


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/metering.py needs DATABASE_URL of a PostgreSQL server (see its docstring)")
    base, _, _ = url.rpartition("/")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=f"{base}/bench_metering",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench"),
        LOG_LEVEL="WARNING",
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_metering")
        conn.execute("CREATE DATABASE bench_metering")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(pods: int, balance: int) -> None:
    """Teams, accounts and running pods, through bulk_create (so model defaults apply)."""
    from django.db import connection

    from billing.models import BillingAccount
    from pods.models import Pod
    from teams.models import Team
    from tests.pods.factories import catalogue

    parts = catalogue()
    count = -(-pods // PODS_PER_TEAM)
    teams = Team.objects.bulk_create(
        [Team(name=f"bench {i}", slug=f"bench-{i}", is_personal=False) for i in range(count)],
        batch_size=5000,
    )
    BillingAccount.objects.bulk_create(
        [BillingAccount(team=team, balance=balance, paid_total=balance) for team in teams],
        batch_size=5000,
    )
    template = dict(
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
        status=Pod.Status.RUNNING,
        metered_until=MINUTE,
    )
    Pod.objects.bulk_create(
        (
            Pod(public_id=f"b{i:013d}", team=teams[i // PODS_PER_TEAM], name=f"pod {i}", **template)
            for i in range(pods)
        ),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def undo(balance: int) -> None:
    """Back to before the tick: no usage rows or write-offs, balances and marks as built."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM billing_ledgerentry WHERE kind LIKE 'usage_%%'")
        cursor.execute("DELETE FROM billing_usagewriteoff")
        cursor.execute("UPDATE billing_billingaccount SET balance = %s", [balance])
        cursor.execute("UPDATE pods_pod SET metered_until = %s", [MINUTE])
        cursor.execute("VACUUM ANALYZE")


def time_tick(minutes: int):
    from pods.metering import meter

    started = time.perf_counter()
    result = meter(until=MINUTE + timedelta(minutes=minutes))
    elapsed = time.perf_counter() - started
    written_off = getattr(result, "written_off_minutes", 0)
    assert result.entries + 2 * written_off == 2 * result.pods * minutes, result
    return elapsed, written_off


BARE_SQL = [
    # The same rows the tick writes: compute and storage for the minute, ON CONFLICT-safe.
    """
    INSERT INTO billing_ledgerentry (public_id, team_id, amount, balance_after, kind,
        idempotency_key, source_type, source_id, description, created_at)
    SELECT 'u' || lpad(to_hex(nextval('billing_ledgerentry_usage_seq')), 13, '0'), c.team_id,
        c.amount, 0, c.kind, c.key, 'pod', c.public_id, c.description, now()
    FROM (
        SELECT p.team_id, -(ROUND(g.secure_price * 1 / 60, 10)) AS amount, 'usage_compute' AS kind,
            'pod:' || p.public_id || ':compute:' || to_char(m, 'YYYYMMDDHH24MI') AS key,
            p.public_id, 'Compute, pod ' || p.name AS description
        FROM pods_pod p JOIN pods_gputype g ON g.id = p.gpu_type_id
        JOIN generate_series(%(since)s, %(last)s, interval '1 minute') AS m ON true
        WHERE p.status = 'running' AND p.metered_until < %(until)s
        UNION ALL
        SELECT p.team_id, -(ROUND((p.volume_gb * 0.10 + p.container_disk_gb * 0.10) / 43200, 10)),
            'usage_storage', 'pod:' || p.public_id || ':storage:' || to_char(m, 'YYYYMMDDHH24MI'),
            p.public_id, 'Storage, pod ' || p.name
        FROM pods_pod p JOIN generate_series(%(since)s, %(last)s, interval '1 minute') AS m ON true
        WHERE p.status = 'running' AND p.metered_until < %(until)s
    ) c
    ON CONFLICT (idempotency_key) DO NOTHING
    """,
    """
    UPDATE billing_billingaccount a SET balance = a.balance + s.total
    FROM (SELECT team_id, SUM(amount) AS total FROM billing_ledgerentry
          WHERE kind LIKE 'usage_%%' GROUP BY team_id) s
    WHERE a.team_id = s.team_id
    """,
    "UPDATE pods_pod SET metered_until = %(until)s WHERE metered_until < %(until)s",
]


def time_bare_sql(minutes: int) -> float:
    from django.db import connection, transaction

    until = MINUTE + timedelta(minutes=minutes)
    params = {"since": MINUTE, "last": until - timedelta(minutes=1), "until": until}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in BARE_SQL:
            cursor.execute(statement, params)
    return time.perf_counter() - started


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE billing_ledgerentry, billing_billingaccount, pods_pod, pods_podevent, "
            "pods_machine, pods_gputype, pods_cpuinstancetype, pods_datacenter, teams_team "
            "RESTART IDENTITY CASCADE"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated pod counts")
    parser.add_argument("--minutes", type=int, default=1, help="minutes the tick catches up")
    parser.add_argument("--balance", type=int, default=1000, help="each team's dollars")
    args = parser.parse_args()
    setup_django()
    for size in (int(size) for size in args.sizes.split(",")):
        reset()
        build(size, args.balance)
        undo(args.balance)
        tick, written_off = time_tick(args.minutes)
        undo(args.balance)
        bare = time_bare_sql(args.minutes)
        span = f", {args.minutes} minutes" if args.minutes > 1 else ""
        cut = f" ({written_off} pod minutes written off)" if written_off else ""
        print(
            f"{size} pods{span}: tick {tick:.1f} s{cut}, bare SQL {bare:.1f} s, {tick / bare:.1f}x"
        )


if __name__ == "__main__":
    main()

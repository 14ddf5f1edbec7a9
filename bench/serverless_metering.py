"""Serverless per-second metering at scale: N ready workers (default 10,000) of one team, the
minute ticks of serverless.metering.meter_workers timed against the bare SQL of the same
essential writes (every worker's two marks and the team's balance, one UPDATE each), measured
in the same run; the last tick also posts every worker's hour row.

    DATABASE_URL=postgres://... .venv/bin/python bench/serverless_metering.py [workers]

It works in a scratch database of its own (bench/scratch_db.py), dropped at the end."""

# ruff: noqa: E402 (sys.path is fixed before any import that may import `queue`)
import os
import sys

# Run as a file, bench/ comes first on sys.path, where bench/queue.py would shadow the standard
# library's `queue` (psycopg imports it): the project's root takes its place, as in metering.py.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.join(ROOT, "bench"):
    sys.path[0] = ROOT

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.scratch_db import scratch_database

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def make_workers(count: int):
    from billing.services import post_entry
    from pods.models import PodTemplate
    from serverless.models import Endpoint, Worker
    from teams.models import Team

    team = Team.objects.create(name="Bench", slug="bench", is_personal=False)
    post_entry(
        team=team,
        amount=Decimal(10**6),
        kind="adjustment",
        idempotency_key="bench",
        description="bench credit",
    )
    template = PodTemplate.objects.create(team=team, name="w", image="w", is_serverless=True)
    endpoint = Endpoint.objects.create(team=team, name="bench", template=template)
    Worker.objects.bulk_create(
        Worker(
            endpoint=endpoint,
            secret_hash=f"{i:064d}",
            version=1,
            state="idle",
            ready_at=T0 + timedelta(microseconds=i * 937),
            price=Decimal("1.185"),
        )
        for i in range(count)
    )
    return team


def bare(team, until: datetime) -> float:
    """The floor: the same row writes with nothing computed."""
    from django.db import connection, transaction

    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE serverless_worker SET metered_until = %s, posted_until = %s", [until, until]
        )
        cursor.execute(
            "UPDATE billing_billingaccount SET balance = balance - 1 WHERE team_id = %s", [team.pk]
        )
        transaction.set_rollback(True)  # leave the marks to the real ticks
    return time.perf_counter() - start


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with scratch_database("serverless_metering.py", "bench_serverless"):
        from django.db import connection

        from billing.management.commands.check_ledger import mismatches
        from serverless.metering import meter_workers

        team = make_workers(count)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE serverless_worker")
        for minute in (1, 2, 3, 61):
            until = T0 + timedelta(minutes=minute)
            floor = bare(team, until)
            start = time.perf_counter()
            step = meter_workers(until=until)
            took = time.perf_counter() - start
            print(
                f"{count} workers, tick at +{minute} min: {took:.3f} s, bare SQL {floor:.3f} s "
                f"({took / floor:.1f}x), {step.entries} hour rows"
            )
        print("check_ledger:", mismatches() or "clean")


if __name__ == "__main__":
    main()

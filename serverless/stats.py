"""Read-only numbers for the serverless console pages, computed in PostgreSQL.

- Per-endpoint job and worker counts for the list: correlated COUNT subqueries in the one query
  that lists the endpoints (a join of jobs and workers would multiply the rows).
- Execution and delay percentiles (p50/p90/p99, percentile_cont) over the endpoint's most recent
  completed jobs still kept: results are deleted 30 minutes after a job ends (1 minute for
  runsync), so "recent" is at most that.
- Requests per minute over the last hour, from the `job.submitted` audit events: they outlive
  the jobs, whose rows are deleted with their results.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncMinute

from serverless.models import Endpoint, Job, Worker
from teams.models import AuditEvent

# Counted per endpoint on the list page: annotation name -> job status.
JOB_COUNTS = {
    "jobs_in_queue": Job.Status.IN_QUEUE,
    "jobs_in_progress": Job.Status.IN_PROGRESS,
    "jobs_completed": Job.Status.COMPLETED,
    "jobs_failed": Job.Status.FAILED,
}
LIVE_WORKER_STATES = [state for state in Worker.State.values if state != Worker.State.STOPPED]
PERCENTILES = (0.5, 0.9, 0.99)
RECENT_COMPLETED = 1000  # the percentiles look at no more completed jobs than this
RPM_MINUTES = 60

# The newest completed jobs first (LIMIT), then both percentile sets over them in one pass.
PERCENTILE_SQL = """
SELECT count(*),
    percentile_cont(%(fractions)s::float8[]) WITHIN GROUP (
        ORDER BY extract(epoch FROM completed_at - started_at) * 1000),
    percentile_cont(%(fractions)s::float8[]) WITHIN GROUP (
        ORDER BY extract(epoch FROM started_at - created_at) * 1000)
FROM (
    SELECT created_at, started_at, completed_at FROM serverless_job
    WHERE endpoint_id = %(endpoint)s AND status = %(status)s
        AND started_at IS NOT NULL AND completed_at IS NOT NULL
    ORDER BY completed_at DESC
    LIMIT %(limit)s
) AS recent
"""


def _count(rows: QuerySet) -> Coalesce:
    # count(*), not count(id): the (endpoint, status) index answers it alone (index-only
    # scan), where counting a column reads every row: 4x slower at 200,000 jobs.
    counted = (
        rows.filter(endpoint=OuterRef("pk"))
        .order_by()
        .values("endpoint")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def with_counts(endpoints: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """Endpoints annotated with jobs_<status> and workers_<state> counts (one query)."""
    jobs = {name: _count(Job.objects.filter(status=status)) for name, status in JOB_COUNTS.items()}
    workers = {
        f"workers_{state}": _count(Worker.objects.filter(state=state))
        for state in LIVE_WORKER_STATES
    }
    return endpoints.annotate(**jobs, **workers)


def _labelled(values: list[float] | None) -> dict[str, int | None]:
    values = values or [None] * len(PERCENTILES)
    return {
        f"p{round(fraction * 100)}": None if value is None else round(value)
        for fraction, value in zip(PERCENTILES, values, strict=True)
    }


def percentiles(endpoint: Endpoint) -> dict:
    """{"count": n, "execution": {"p50": ms, ...}, "delay": {...}} over the recent completed
    jobs; None values when there is none."""
    params = {
        "fractions": list(PERCENTILES),
        "endpoint": endpoint.pk,
        "status": Job.Status.COMPLETED,
        "limit": RECENT_COMPLETED,
    }
    with connection.cursor() as cursor:
        cursor.execute(PERCENTILE_SQL, params)
        count, execution, delay = cursor.fetchone()
    return {"count": count, "execution": _labelled(execution), "delay": _labelled(delay)}


def requests_per_minute(endpoint: Endpoint, now: datetime) -> dict:
    """Jobs submitted in each of the last RPM_MINUTES minutes (the current one last), as
    {"labels": ["HH:MM", ...], "values": [n, ...]} for the chart."""
    last = now.replace(second=0, microsecond=0)
    first = last - timedelta(minutes=RPM_MINUTES - 1)
    counts = dict(
        AuditEvent.objects.filter(
            team_id=endpoint.team_id,
            action="job.submitted",
            created_at__gte=first,
            details__endpoint=endpoint.public_id,
        )
        .annotate(minute=TruncMinute("created_at"))
        .order_by()
        .values_list("minute")
        .annotate(n=Count("pk"))
    )
    minutes = [first + timedelta(minutes=n) for n in range(RPM_MINUTES)]
    return {
        "labels": [minute.strftime("%H:%M") for minute in minutes],
        "values": [counts.get(minute, 0) for minute in minutes],
    }

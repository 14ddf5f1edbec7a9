"""Thin Celery tasks: take ids, call one lifecycle function. Each is safe to run twice."""

from celery import shared_task

from billing.money import as_string
from pods import lifecycle


@shared_task
def boot_pod_task(pod_id: int) -> None:
    lifecycle.boot_pod(pod_id)


@shared_task
def halt_pod_task(pod_id: int) -> None:
    lifecycle.halt_pod(pod_id)


@shared_task
def reconcile_pods_task() -> None:
    lifecycle.reconcile()


@shared_task
def meter_task() -> dict | None:
    """Charge the minutes that ended since the last tick, then act on teams short of funds.
    Returns what it did, if anything: Celery logs it, and an idle tick at DEBUG (console.logs)."""
    from pods import funds, metering

    result = metering.meter()
    stopped = funds.enforce(team_ids=result.team_ids)
    if not result.total and not result.entries and not stopped:
        return None
    return {
        "charged": as_string(-result.total),  # usage is negative in the ledger
        "teams": len(result.team_ids),
        "ledger_entries": result.entries,
        "teams_stopped": len(stopped),
    }

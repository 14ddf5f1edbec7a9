"""Thin Celery tasks of the serverless app. Each is safe to run twice."""

from celery import shared_task

from serverless import autoscaler, services


@shared_task
def sweep_jobs_task() -> None:
    services.sweep_jobs()


@shared_task
def autoscale_task() -> int:
    """Returns how many changes the pass made (idle passes log at DEBUG)."""
    return sum(autoscaler.autoscale().values())

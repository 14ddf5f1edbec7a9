"""Thin Celery tasks of the serverless app. Each is safe to run twice."""

from celery import shared_task

from serverless import services


@shared_task
def sweep_jobs_task() -> None:
    services.sweep_jobs()

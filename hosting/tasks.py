"""Thin periodic hosting tasks (listed in CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from hosting import services


@shared_task
def check_heartbeats_task() -> int:
    return services.check_heartbeats()


@shared_task
def maintenance_sweep_task() -> dict:
    return services.maintenance_sweep()

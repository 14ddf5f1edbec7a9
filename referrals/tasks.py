"""Thin Celery tasks: call one service, safe to run twice and at the same time."""

from celery import shared_task

from referrals.commissions import process


@shared_task
def process_commissions_task() -> int:
    """Commissions on usage since the last run (beat, every 5 minutes)."""
    return process().commissions

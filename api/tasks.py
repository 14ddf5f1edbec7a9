"""Thin Celery tasks of the API."""

from celery import shared_task

from api import idempotency


@shared_task
def expire_idempotency_keys_task() -> int:
    """Forget Idempotency-Key rows older than IDEMPOTENCY_KEY_TTL_HOURS."""
    return idempotency.expire_keys()

"""Run the Idempotency-Key expiry by hand (what Celery beat runs every hour)."""

from django.core.management.base import BaseCommand

from api.tasks import expire_idempotency_keys_task


class Command(BaseCommand):
    help = "Delete Idempotency-Key rows older than IDEMPOTENCY_KEY_TTL_HOURS."

    def handle(self, *args, **options) -> None:
        count = expire_idempotency_keys_task()
        self.stdout.write(f"Deleted {count} expired Idempotency-Key row(s).")

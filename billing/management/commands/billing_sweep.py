"""Run the periodic billing sweep by hand (auto-recharges and low-balance alerts now due)."""

from django.core.management.base import BaseCommand

from billing.tasks import billing_sweep_task


class Command(BaseCommand):
    help = "Queue due auto-recharges and low-balance alerts (what Celery beat runs every 5 min)."

    def handle(self, *args, **options) -> None:
        count = billing_sweep_task()
        self.stdout.write(f"Checked {count} account(s).")

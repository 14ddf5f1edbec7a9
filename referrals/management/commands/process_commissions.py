"""Run commission processing by hand (what Celery beat runs every 5 minutes)."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from billing.money import format_usd
from referrals.commissions import process


class Command(BaseCommand):
    help = "Write referral and template commissions for usage entries not processed yet."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Read up to the newest ledger entry now instead of waiting "
            "REFERRAL_COMMIT_LAG_SECONDS for in-flight charges to commit (use when nothing "
            "else is writing to the ledger, e.g. after stopping metering).",
        )

    def handle(self, *args, no_wait: bool = False, **options) -> None:
        result = process(lag=timedelta(0) if no_wait else None)
        self.stdout.write(
            f"{result.commissions} commission(s), {result.reversals} reversal(s), "
            f"{format_usd(result.total, 4)} in {result.batches} batch(es); "
            f"ledger read up to id {result.position}."
        )

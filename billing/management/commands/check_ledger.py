"""Prove every team's cached balance equals the sum of its ledger entries plus its usage
charged and not posted yet (the open hour, billing.usage), that this accrual is what the
resources themselves say they accrued, and that the paid total matches its entries."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import DecimalField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import BillingAccount, LedgerEntry
from billing.money import ZERO, format_usd
from billing.usage import accrual_totals


def _sum_of(filter_q: Q | None = None) -> Coalesce:
    entries = LedgerEntry.objects.filter(team=OuterRef("team"))
    if filter_q is not None:
        entries = entries.filter(filter_q)
    total = entries.order_by().values("team").annotate(s=Sum("amount")).values("s")
    return Coalesce(Subquery(total), Value(ZERO), output_field=DecimalField())


def mismatches() -> list[str]:
    problems = []
    accounts = BillingAccount.objects.select_related("team").annotate(
        ledger_sum=_sum_of(), paid_sum=_sum_of(Q(kind__in=LedgerEntry.PAID_KINDS))
    )
    accrued = accrual_totals()
    for account in accounts:
        slug = account.team.slug
        expected = account.ledger_sum + account.usage_accrued
        if account.balance != expected:
            problems.append(
                f"{slug}: balance {account.balance} != ledger sum {account.ledger_sum} "
                f"+ open usage {account.usage_accrued}"
            )
        open_usage = accrued.pop(account.team_id, ZERO)
        if account.usage_accrued != open_usage:
            problems.append(
                f"{slug}: open usage {account.usage_accrued} != {open_usage} accrued by resources"
            )
        if account.paid_total != account.paid_sum:
            problems.append(f"{slug}: paid total {account.paid_total} != {account.paid_sum}")
    for team_id, amount in sorted(accrued.items()):
        problems.append(f"team {team_id}: {amount} of open usage without a billing account")
    orphans = LedgerEntry.objects.exclude(team__billing_account__isnull=False)
    for team_slug in orphans.values_list("team__slug", flat=True).distinct():
        problems.append(f"{team_slug}: ledger entries without a billing account")
    return problems


class Command(BaseCommand):
    help = (
        "Check that balance = sum(ledger entries) + open usage for every team, and the open "
        "usage against the resources; exit non-zero otherwise."
    )

    def handle(self, *args, **options) -> None:
        problems = mismatches()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} ledger mismatch(es)")
        total = LedgerEntry.objects.total()
        count = BillingAccount.objects.count()
        self.stdout.write(f"Ledger OK: {count} accounts, net {format_usd(total)}.")

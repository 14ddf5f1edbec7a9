"""What a host's machines earn: the usage ledger rows of the pods placed on them (each row
names its pod in source_type/source_id), per machine and month, minus SPEC.md's 24 % service
fee, shown split into its parts. Posted rows only: the open hour joins when it is posted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce, TruncMonth

from billing.models import LedgerEntry
from billing.money import ZERO, to_money
from hosting.models import HostedMachine, Payout
from pods.models import Pod
from teams.models import Team

SERVICE_FEE = Decimal("0.24")
# SPEC.md: the fee covers about 4 % card fees, 2 % the referral and 1 % the template program.
FEE_SPLIT = (
    ("Card fees", Decimal("0.04")),
    ("Referral program", Decimal("0.02")),
    ("Template program", Decimal("0.01")),
    ("Platform", SERVICE_FEE - Decimal("0.07")),
)


@dataclass(frozen=True)
class MonthLine:
    machine: HostedMachine
    month: date
    revenue: Decimal

    @property
    def fee(self) -> Decimal:
        return to_money(self.revenue * SERVICE_FEE)

    @property
    def earned(self) -> Decimal:
        return self.revenue - self.fee


def month_lines(team: Team) -> list[MonthLine]:
    """One line per machine and month with revenue, newest month first; one query."""
    machine_of_pod = Pod.objects.filter(public_id=OuterRef("source_id")).values("machine_id")
    machines = {
        h.machine_id: h for h in HostedMachine.objects.filter(team=team).select_related("machine")
    }
    pods = Pod.objects.filter(machine_id__in=list(machines))
    rows = (
        LedgerEntry.objects.filter(kind__in=LedgerEntry.USAGE_KINDS, source_type="pod")
        # The (source_type, source_id) index finds the rows of these machines' pods.
        .filter(source_id__in=pods.values("public_id"))
        .annotate(machine_id=Subquery(machine_of_pod[:1]))
        .annotate(month=TruncMonth(Coalesce("period_start", "created_at")))
        .values("machine_id", "month")
        .annotate(total=Sum("amount"))
        .order_by("-month", "machine_id")
    )
    return [
        MonthLine(
            machine=machines[row["machine_id"]], month=row["month"].date(), revenue=-row["total"]
        )
        for row in rows
    ]


def totals(team: Team, lines: list[MonthLine]) -> dict:
    revenue = sum((line.revenue for line in lines), ZERO)
    earned = sum((line.earned for line in lines), ZERO)
    paid = Payout.objects.filter(team=team).aggregate(total=Sum("amount"))["total"] or ZERO
    split = [(label, to_money(revenue * share)) for label, share in FEE_SPLIT]
    return {
        "revenue": revenue,
        "fee": revenue - earned,
        "earned": earned,
        "paid": paid,
        "owed": earned - paid,
        "split": split,
    }


def chart(lines: list[MonthLine]) -> list[dict]:
    """Earned per month (all machines), with each bar's length in percent of the largest."""
    months: dict[date, Decimal] = {}
    for line in lines:
        months[line.month] = months.get(line.month, ZERO) + line.earned
    top = max(months.values(), default=ZERO)
    return [
        {"month": month, "earned": value, "percent": int(value * 100 / top) if top > 0 else 0}
        for month, value in sorted(months.items())
    ]

"""Read-side figures for the referrals page and the template cards. Sums are exact (10
places); what people read is rounded half up to the cent by the `usd` filter / format_usd."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from billing.money import ZERO, as_string, format_usd, round_cents
from referrals.commissions import template_runtime_minutes
from referrals.models import (
    Commission,
    CommissionKind,
    Program,
    ProgramKind,
    Referral,
    TemplateUnlock,
)

MONTHS_SHOWN = 12
EXAMPLE_USERS = 20
EXAMPLE_POD_SPEND = Decimal("100")


@dataclass(frozen=True)
class ReferredUser:
    masked_email: str
    joined: object
    pods_spend: Decimal
    serverless_spend: Decimal
    earned: Decimal


def referred_users(user) -> list[ReferredUser]:
    """Everyone who signed up through the user's link, with the spend each program counted."""
    rows = (
        Referral.objects.filter(referrer=user)
        .select_related("referred_user")
        .annotate(
            pods=Sum("commissions__spend", filter=Q(commissions__kind=ProgramKind.PODS)),
            serverless=Sum(
                "commissions__spend", filter=Q(commissions__kind=ProgramKind.SERVERLESS)
            ),
            earned=Sum("commissions__amount"),
        )
        .order_by("-created_at")
    )
    return [
        ReferredUser(
            masked_email=row.masked_email,
            joined=row.created_at,
            pods_spend=row.pods or ZERO,
            serverless_spend=row.serverless or ZERO,
            earned=row.earned or ZERO,
        )
        for row in rows
    ]


def template_earnings(user) -> list[dict]:
    rows = (
        Commission.objects.for_earner(user)
        .filter(kind=CommissionKind.TEMPLATES)
        .values("template_name")
        .annotate(
            spend=Sum("spend"), earned=Sum("amount"), teams=Count("source_team", distinct=True)
        )
        .order_by("-earned")
    )
    return list(rows)


def totals(user) -> dict:
    commissions = Commission.objects.for_earner(user)
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "all_time": commissions.total(),
        "this_month": commissions.filter(earned_at__gte=month_start).total(),
        "referred": Referral.objects.filter(referrer=user).count(),
    }


SERIES = [
    CommissionKind.PODS,
    CommissionKind.SERVERLESS,
    CommissionKind.TEMPLATES,
    CommissionKind.ADJUSTMENT,
]


def by_month(user) -> list[dict]:
    """The last months with commissions: per program and in total (reversals included)."""
    rows = (
        Commission.objects.for_earner(user)
        .annotate(month=TruncMonth("earned_at"))
        .values("month", "kind")
        .annotate(total=Sum("amount"))
    )
    months: dict = {}
    for row in rows:
        month = months.setdefault(
            row["month"], {"month": row["month"], "total": ZERO, **dict.fromkeys(SERIES, ZERO)}
        )
        month[row["kind"]] += row["total"]
        month["total"] += row["total"]
    return sorted(months.values(), key=lambda m: m["month"])[-MONTHS_SHOWN:]


def chart_data(months: list[dict]) -> dict:
    """For json_script: decimal strings at cent precision (never floats), display strings."""
    labels = dict(CommissionKind.choices)
    return {
        "labels": [m["month"].strftime("%b %Y") for m in months],
        "datasets": [
            {
                "label": str(labels[kind]),
                "values": [as_string(round_cents(m[kind])) for m in months],
                "display": [format_usd(m[kind]) for m in months],
            }
            for kind in SERIES
            if any(m[kind] for m in months)
        ],
    }


def live_programs() -> dict[str, Program]:
    today = timezone.now().date()
    return {program.kind: program for program in Program.objects.live_on(today)}


def worked_example(programs: dict[str, Program]) -> dict | None:
    """SPEC.md's example at the current pods rate: 20 referred users x $100 of pod spend."""
    program = programs.get(ProgramKind.PODS)
    if program is None:
        return None
    spend = EXAMPLE_USERS * EXAMPLE_POD_SPEND
    return {
        "users": EXAMPLE_USERS,
        "each": EXAMPLE_POD_SPEND,
        "spend": spend,
        "rate": program.percent_label,
        "earned": round_cents(spend * program.rate),
    }


def template_card(template, user) -> dict | None:
    """What a public template earned its creator, for the creator's eyes only (else None)."""
    if not template.is_public or user is None or template.created_by_id != user.pk:
        return None
    commissions = Commission.objects.filter(template=template, earner=user)
    program = live_programs().get(ProgramKind.TEMPLATES)
    card = {"earned": commissions.total(), "spend": commissions.aggregate(s=Sum("spend"))["s"]}
    card["spend"] = card["spend"] or ZERO
    card["program"] = program
    if program is not None and program.min_runtime_minutes:
        unlocked = TemplateUnlock.objects.filter(program=program, template=template).exists()
        needed = program.min_runtime_minutes
        minutes = needed if unlocked else min(needed, template_runtime_minutes(template.pk))
        card["unlocked"] = minutes >= needed
        card["runtime_hours"] = Decimal(minutes) / 60
        card["needed_hours"] = Decimal(needed) / 60
    else:
        card["unlocked"] = True
    return card

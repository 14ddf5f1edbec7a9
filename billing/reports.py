"""Read-side billing figures for pages and charts: spend by day and kind, runway."""

from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import LedgerEntry
from billing.money import ZERO, as_string, format_usd
from teams.models import Team

SPEND_KINDS = [
    LedgerEntry.Kind.USAGE_COMPUTE,
    LedgerEntry.Kind.USAGE_STORAGE,
    LedgerEntry.Kind.USAGE_SERVERLESS,
]


def _spend(team: Team, days: int):
    since = timezone.now() - timedelta(days=days)
    return LedgerEntry.objects.filter(team=team, kind__in=SPEND_KINDS, created_at__gte=since)


def spend_by_day(team: Team, days: int = 30) -> list[tuple[date, Decimal]]:
    """Every day of the window (zero days included), spend as a positive amount."""
    rows = (
        _spend(team, days)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("amount"))
    )
    totals = {row["day"]: -row["total"] for row in rows}
    today = timezone.now().date()
    return [
        (day, totals.get(day, ZERO))
        for day in (today - timedelta(days=offset) for offset in range(days - 1, -1, -1))
    ]


def spend_by_kind(team: Team, days: int = 30) -> list[tuple[str, Decimal]]:
    rows = _spend(team, days).values("kind").annotate(total=Sum("amount"))
    totals = {row["kind"]: -row["total"] for row in rows}
    labels = dict(LedgerEntry.Kind.choices)
    return [(labels[kind], totals.get(kind, ZERO)) for kind in SPEND_KINDS]


def chart_data(team: Team) -> dict:
    """For json_script: labels and decimal strings (never floats; Chart.js parses strings)."""
    by_day = spend_by_day(team)
    by_kind = spend_by_kind(team)
    return {
        "has_spend": any(amount for _, amount in by_kind),
        "days": {
            "labels": [day.isoformat() for day, _ in by_day],
            "values": [as_string(amount) for _, amount in by_day],
            "display": [format_usd(amount) for _, amount in by_day],
        },
        "kinds": {
            "labels": [label for label, _ in by_kind],
            "values": [as_string(amount) for _, amount in by_kind],
            "display": [format_usd(amount) for _, amount in by_kind],
        },
    }


def runway(balance: Decimal, burn_per_hour: Decimal) -> timedelta | None:
    """How long the balance lasts at the current burn rate (None when nothing is running)."""
    if burn_per_hour <= 0:
        return None
    if balance <= 0:
        return timedelta(0)
    seconds = int(balance * 3600 / burn_per_hour)
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """3 d 4 h, 5 h 12 min, 7 min; under a minute is 'less than a minute'."""
    minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "less than a minute"

"""The hourly spend limit rule: it rises with what a team has paid (settings.SPEND_LIMIT_TIERS).

SPEND_LIMIT_TIERS is "paid:limit,paid:limit,..." in dollars, e.g. "0:80,500:200,2000:500": a
team that has paid at least $500 in total (top-ups and paid invoices) may spend $200/h. Staff can
override any team's limit in the admin (BillingAccount.spend_limit_override).
"""

from decimal import Decimal

from django.conf import settings

from billing.money import to_money


def parse_tiers(spec: str) -> list[tuple[Decimal, Decimal]]:
    tiers = []
    for item in spec.split(","):
        if not item.strip():
            continue
        paid, _, limit = item.partition(":")
        tiers.append((to_money(paid.strip()), to_money(limit.strip())))
    if not tiers:
        raise ValueError("SPEND_LIMIT_TIERS needs at least one paid:limit pair")
    return sorted(tiers)


def tiers() -> list[tuple[Decimal, Decimal]]:
    return parse_tiers(settings.SPEND_LIMIT_TIERS)


def limit_for_paid_total(paid_total: Decimal) -> Decimal:
    """The highest tier whose paid threshold the team has reached (the first tier at worst)."""
    table = tiers()
    limit = table[0][1]
    for paid, tier_limit in table:
        if paid_total >= paid:
            limit = tier_limit
    return limit

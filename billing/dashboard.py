"""The billing card on the team dashboard (listed in console.dashboard.CARD_PROVIDERS)."""

from django.urls import reverse

from billing.burn import burn_rate
from billing.money import format_usd
from billing.reports import format_duration, runway
from billing.services import get_account


def balance_card(request) -> dict | None:
    """Balance and runway, for members who may see billing (Billing and Admin)."""
    if not request.membership.can("billing"):
        return None
    account = get_account(request.team)
    lasts = runway(account.balance, burn_rate(request.team))
    detail = f"Lasts about {format_duration(lasts)}" if lasts is not None else "Nothing running"
    return {
        "title": "Balance",
        "value": format_usd(account.balance),
        "detail": detail,
        "url": reverse("billing", args=[request.team.slug]),
        "icon": "wallet2",
    }

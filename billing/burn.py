"""The team's current burn rate ($/h), summed from providers registered by higher apps.

Billing knows nothing of pods or serverless: they register a function `provider(team) ->
Decimal` (what the team's running resources cost per hour) from their AppConfig.ready():

    from billing.burn import register_burn_rate_provider
    register_burn_rate_provider(pods.services.team_burn_rate)
"""

from collections.abc import Callable
from decimal import Decimal

from billing.money import ZERO, to_money

BurnRateProvider = Callable[[object], Decimal]
BURN_RATE_PROVIDERS: list[BurnRateProvider] = []


def register_burn_rate_provider(provider: BurnRateProvider) -> None:
    if provider not in BURN_RATE_PROVIDERS:
        BURN_RATE_PROVIDERS.append(provider)


def burn_rate(team) -> Decimal:
    """What the team spends per hour right now, across every registered provider."""
    total = ZERO
    for provider in BURN_RATE_PROVIDERS:
        total += to_money(provider(team))
    return total

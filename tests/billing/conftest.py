import pytest

from billing import burn


@pytest.fixture
def burn_rates():
    """Set a team's burn rate for a test: burn_rates[team.pk] = Decimal("2.50")."""
    rates: dict = {}

    def provider(team):
        return rates.get(team.pk, 0)

    burn.register_burn_rate_provider(provider)
    yield rates
    burn.BURN_RATE_PROVIDERS.remove(provider)

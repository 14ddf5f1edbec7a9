from decimal import Decimal

import pytest
from django.db import transaction

from billing import services


@pytest.fixture
def funded(team):
    services.post_entry(
        team=team, amount=Decimal("100"), kind="top_up", idempotency_key="t", description="t"
    )
    return team


def test_it_allows_a_deploy_the_team_can_afford(funded, burn_rates):
    burn_rates[funded.pk] = Decimal("10")
    result = services.can_afford(team=funded, extra_cost_per_hour=Decimal("0.79"))
    assert result.ok
    assert result.burn_rate == Decimal("10")


def test_it_refuses_above_the_spend_limit_and_says_by_how_much(funded, burn_rates):
    burn_rates[funded.pk] = Decimal("79.50")
    result = services.can_afford(team=funded, extra_cost_per_hour=Decimal("0.79"))
    assert not result.ok
    assert result.shortfall == Decimal("0.29")
    assert "spend limit of $80.00/h by $0.29/h" in result.reason


def test_it_refuses_when_the_balance_does_not_cover_an_hour(team, burn_rates):
    services.post_entry(
        team=team, amount=Decimal("5"), kind="top_up", idempotency_key="t", description="t"
    )
    burn_rates[team.pk] = Decimal("4.50")
    result = services.can_afford(team=team, extra_cost_per_hour=Decimal("0.79"))
    assert not result.ok
    assert result.shortfall == Decimal("0.29")
    assert "balance of $5.00 does not cover one hour" in result.reason
    assert "add at least $0.29" in result.reason


def test_it_uses_the_staff_override(funded, burn_rates):
    account = services.get_account(funded)
    account.spend_limit_override = Decimal("5")
    account.save()
    result = services.can_afford(team=funded, extra_cost_per_hour=Decimal("6"))
    assert not result.ok
    assert "spend limit of $5.00/h" in result.reason


def test_it_raises_the_limit_with_paid_history(team, settings):
    settings.SPEND_LIMIT_TIERS = "0:80,500:200"
    services.post_entry(
        team=team, amount=Decimal("499.99"), kind="top_up", idempotency_key="a", description="t"
    )
    assert services.get_account(team).spend_limit_per_hour == Decimal("80")
    services.post_entry(
        team=team, amount=Decimal("0.01"), kind="top_up", idempotency_key="b", description="t"
    )
    assert services.get_account(team).spend_limit_per_hour == Decimal("200")


def test_it_locks_the_account_when_asked(funded):
    with transaction.atomic():
        result = services.can_afford(team=funded, extra_cost_per_hour=Decimal("1"), lock=True)
    assert result.ok

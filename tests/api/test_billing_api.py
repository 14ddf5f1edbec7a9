"""The team's balance, burn rate and ledger over the REST API: billing roles only, money as
strings of Decimals, other teams' entries never shown."""

from decimal import Decimal

import pytest

from pods.models import Pod
from pods.services import team_burn_rate
from teams.models import Membership, Role
from tests.api.helpers import key_client
from tests.conftest import make_user
from tests.pods.factories import catalogue, fund, stopped_pod


def test_balance_and_burn_rate_are_decimal_strings(team, alice):
    parts = catalogue()
    fund(team, "100")
    stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    client, _ = key_client(team, alice)
    body = client.get("/api/v1/billing/balance/").json()
    assert isinstance(body["balance"], str) and Decimal(body["balance"]) == Decimal("100")
    burn = team_burn_rate(team)
    assert burn > 0 and Decimal(body["burn_rate_per_hour"]) == burn
    assert Decimal(body["runway_hours"]) == round(Decimal("100") / burn, 2)


def test_the_ledger_lists_the_teams_entries_newest_first(team, alice, charlie):
    fund(team, "10")
    fund(team, "25")
    fund(charlie.memberships.get().team, "999")
    client, _ = key_client(team, alice)
    body = client.get("/api/v1/billing/ledger/?limit=1").json()
    assert body["count"] == 2
    assert body["results"][0]["amount"] == "25.000000" or Decimal(
        body["results"][0]["amount"]
    ) == Decimal("25")
    assert isinstance(body["results"][0]["balance_after"], str)


@pytest.mark.parametrize(
    ("role", "status"), [(Role.BILLING, 200), (Role.DEV, 403), (Role.BASIC, 403)]
)
def test_only_billing_roles_see_money(team, role, status):
    user = make_user(f"{role}@example.com")
    Membership.objects.create(user=user, team=team, role=role)
    client, _ = key_client(team, user)
    for url in ["/api/v1/billing/balance/", "/api/v1/billing/ledger/"]:
        response = client.get(url)
        assert response.status_code == status
        if status == 403:
            assert response.json()["code"] == "permission_denied"

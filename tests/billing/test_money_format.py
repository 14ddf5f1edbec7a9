"""Money as people read it: 2 decimals for amounts, up to 4 for per-hour prices, never the
ledger's 10 (`10.0000000000`) in a form, the audit log or the admin."""

from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from billing import money
from billing.forms import AutoRechargeForm, LowBalanceAlertForm
from billing.services import adjust_balance, get_account
from billing.widgets import MoneyInput
from teams import audit
from teams.models import User
from tests.conftest import login

TEN = "10.0000000000"  # how str() writes a money_field() value


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser(email="staff@example.com", password="x"))
    return client


@pytest.mark.parametrize(
    ("amount", "places", "shown"),
    [
        ("10", 2, "$10.00"),
        (TEN, 4, "$10.00"),
        ("0.79", 4, "$0.79"),
        ("0.7908", 4, "$0.7908"),
        ("0.0131666667", 4, "$0.0132"),
        ("0.79", 3, "$0.79"),
        ("0.7908", 3, "$0.791"),
        ("-0.29", 4, "-$0.29"),
        ("1234.5", 4, "$1,234.50"),
        ("0.00001", 4, "$0.00"),
        ("-0.001", 2, "$0.00"),
    ],
)
def test_it_shows_up_to_the_places_asked_and_at_least_cents(amount, places, shown):
    assert money.format_usd(Decimal(amount), places) == shown


def test_the_filter_is_the_same_and_refuses_float():
    rendered = Template("{% load money %}{{ a|usd }} {{ r|usd:4 }}").render(
        Context({"a": Decimal(TEN), "r": Decimal("0.0167000000")})
    )
    assert rendered == "$10.00 $0.0167"
    with pytest.raises(TypeError):
        money.format_usd(0.1)


def test_the_widget_shows_a_stored_amount_with_two_decimals_and_typed_input_as_typed():
    assert MoneyInput().format_value(Decimal(TEN)) == "10.00"
    assert MoneyInput(places=4).format_value(Decimal("0.7900000000")) == "0.79"
    assert MoneyInput().format_value("12.3") == "12.3"
    assert 'step="0.01"' in MoneyInput().render("amount", Decimal(TEN))


def test_the_billing_forms_render_amounts_without_ten_decimals(team):
    account = get_account(team)
    initial = {"threshold": account.auto_recharge_threshold, "amount": Decimal("25.0000000000")}
    html = str(AutoRechargeForm(initial=initial, team=team)) + str(
        LowBalanceAlertForm(initial={"threshold": Decimal(TEN)})
    )
    assert 'value="10.00"' in html and 'value="25.00"' in html
    assert "0000000" not in html


def test_the_billing_page_shows_the_alert_threshold_as_entered(team, alice):
    account = get_account(team)
    account.low_balance_alert_threshold = Decimal("10")
    account.save()
    page = login(alice).get(reverse("billing", args=[team.slug])).content.decode()
    assert 'value="10.00"' in page and TEN not in page


def test_the_audit_log_shows_recorded_amounts_as_money(team, alice):
    details = {"threshold": TEN, "amount": "25.5000000000", "card": "Visa •••• 4242", "n": "3"}
    audit.record(actor=alice, team=team, action="billing.x", resource_type="t", details=details)
    page = login(alice).get(reverse("audit_log", args=[team.slug])).content.decode()
    assert "$10.00" in page and "$25.50" in page and "Visa •••• 4242" in page
    assert TEN not in page


def test_the_admin_shows_money_columns_and_fields_as_money(team, staff):
    adjust_balance(team=team, amount=Decimal("25"), reason="voucher", actor=None)
    ledger = staff.get(reverse("admin:billing_ledgerentry_changelist")).content.decode()
    assert "$25.00" in ledger and "25.0000000000" not in ledger
    account = get_account(team)
    account.spend_limit_override = Decimal("80")
    account.save()
    change = staff.get(reverse("admin:billing_billingaccount_change", args=[account.pk]))
    html = change.content.decode()
    assert "$10.00" in html  # the auto-recharge threshold
    assert 'value="80.00"' in html  # the one editable amount, in the money widget
    assert "0000000" not in html


def test_the_gpu_price_list_edits_prices_with_up_to_four_decimals(staff):
    from tests.pods.factories import catalogue

    catalogue()
    html = staff.get(reverse("admin:pods_gputype_changelist")).content.decode()
    assert 'value="0.79"' in html and 'step="0.0001"' in html
    assert "0.7900000000" not in html

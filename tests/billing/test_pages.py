from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import Invoice, LedgerEntry, Payment
from tests.conftest import login


def post(team, amount, key, kind="top_up", description="test"):
    return services.post_entry(
        team=team, amount=Decimal(amount), kind=kind, idempotency_key=key, description=description
    )


@pytest.fixture
def funded(team):
    post(team, "100", "topup", description="Card top-up")
    post(team, "-1.2345", "pod:1:m:1", kind="usage_compute", description="A40 pod")
    post(team, "-0.5", "vol:1:m:1", kind="usage_storage", description="Volume")
    return team


def test_it_shows_balance_burn_rate_and_runway(funded, alice, burn_rates):
    burn_rates[funded.pk] = Decimal("30")
    response = login(alice).get(reverse("billing", args=[funded.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "$98.27" in html  # 100 - 1.2345 - 0.5 = 98.2655
    assert "$30.00<span" in html  # usd:3 shows up to 3 decimals
    assert "Lasts about 3 h 16 min at the current rate" in html


def test_it_says_lasts_about_days_and_hours(team, alice, burn_rates):
    post(team, "100", "t")
    burn_rates[team.pk] = Decimal("1.3")
    html = login(alice).get(reverse("billing", args=[team.slug])).content.decode()
    assert "Lasts about 3 d 4 h at the current rate" in html


def test_it_sends_chart_data_as_decimal_strings(funded, alice):
    response = login(alice).get(reverse("billing", args=[funded.slug]))
    chart = response.context["chart_data"]
    assert chart["days"]["values"][-1] == "1.7345"
    assert chart["kinds"]["values"] == ["1.2345", "0.5", "0"]
    assert chart["kinds"]["display"] == ["$1.23", "$0.50", "$0.00"]
    assert all(isinstance(v, str) for v in chart["days"]["values"])


def test_it_charts_only_the_last_30_days(team, alice):
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        post(team, "10", "old-topup")
        post(team, "-5", "old-usage", kind="usage_compute")
    post(team, "-1", "new-usage", kind="usage_compute")
    chart = login(alice).get(reverse("billing", args=[team.slug])).context["chart_data"]
    assert len(chart["days"]["values"]) == 30
    assert chart["kinds"]["values"][0] == "1"


def test_it_filters_the_ledger(funded, alice):
    client = login(alice)
    url = reverse("billing_ledger", args=[funded.slug])
    page = client.get(url, {"kind": "usage_compute"}).context["page"]
    assert [e.description for e in page] == ["A40 pod"]
    page = client.get(url, {"q": "volume"}).context["page"]
    assert [e.description for e in page] == ["Volume"]
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert not client.get(url, {"since": tomorrow}).context["page"].object_list


def test_it_exports_the_ledger_as_csv(funded, alice):
    response = login(alice).get(
        reverse("billing_ledger_csv", args=[funded.slug]), {"kind": "usage_storage"}
    )
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("row,period_start,period_end,kind,description")
    assert [line.split(",")[0] for line in lines[1:]] == ["usage", "period_total", "total"]
    assert ",usage_storage,Volume,,,1,-0.5000000000," in lines[1]


def test_it_shows_an_empty_state_without_credit(team, alice):
    html = login(alice).get(reverse("billing", args=[team.slug])).content.decode()
    assert "No credit yet" in html


def test_it_puts_a_balance_card_on_the_dashboard_for_billing_roles(funded, member_with_role):
    billing = member_with_role("billing").get(reverse("dashboard", args=[funded.slug]))
    assert any(card["title"] == "Balance" for card in billing.context["cards"])
    basic = member_with_role("basic").get(reverse("dashboard", args=[funded.slug]))
    assert not any(card["title"] == "Balance" for card in basic.context["cards"])


def test_it_downloads_a_receipt_pdf(team, alice):
    payment = Payment.objects.create(
        team=team,
        amount=Decimal("25"),
        status=Payment.Status.SUCCEEDED,
        card_label="Visa •••• 4242",
    )
    response = login(alice).get(reverse("billing_receipt_pdf", args=[team.slug, payment.public_id]))
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_it_has_no_receipt_for_a_failed_payment(team, alice):
    payment = Payment.objects.create(team=team, amount=Decimal("25"), status=Payment.Status.FAILED)
    response = login(alice).get(reverse("billing_receipt_pdf", args=[team.slug, payment.public_id]))
    assert response.status_code == 404


def test_it_shows_why_a_payment_failed(team, alice):
    payment = Payment.objects.create(
        team=team,
        amount=Decimal("25"),
        status=Payment.Status.FAILED,
        failure_message="Your card has insufficient funds.",
    )
    html = login(alice).get(reverse("billing_payment", args=[team.slug, payment.public_id]))
    assert "Your card has insufficient funds." in html.content.decode()


def test_it_hides_other_teams_payments(team, alice, charlie):
    other = charlie.memberships.get().team
    payment = Payment.objects.create(team=other, amount=Decimal("25"), status="succeeded")
    response = login(alice).get(reverse("billing_payment", args=[team.slug, payment.public_id]))
    assert response.status_code == 404


def test_it_requests_a_business_invoice(team, alice):
    url = reverse("billing_invoice_request", args=[team.slug])
    response = login(alice).post(url, {"amount": "4999.99", "billing_name": "Acme Inc"})
    assert response.status_code == 200
    assert not Invoice.objects.exists()
    response = login(alice).post(
        url, {"amount": "5000", "billing_name": "Acme Inc", "billing_address": "1 Main St"}
    )
    invoice = Invoice.objects.get()
    assert response.status_code == 302
    assert invoice.status == Invoice.Status.REQUESTED
    assert invoice.amount == Decimal("5000")


def test_it_sets_the_low_balance_alert(team, alice):
    login(alice).post(reverse("billing_alerts", args=[team.slug]), {"threshold": "20"})
    assert services.get_account(team).low_balance_alert_threshold == Decimal("20")
    login(alice).post(reverse("billing_alerts", args=[team.slug]), {"threshold": ""})
    assert services.get_account(team).low_balance_alert_threshold is None


def test_it_never_shows_the_ledger_to_a_dev(funded, member_with_role):
    response = member_with_role("dev").get(reverse("billing_ledger", args=[funded.slug]))
    assert response.status_code == 403
    assert LedgerEntry.objects.count() == 3

"""Earnings: the usage ledger rows of pods on the host's machine, per machine and month,
minus the 24 % service fee with its split; payouts recorded by staff in the admin."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.urls import reverse

from hosting import earnings
from hosting.models import Payout
from pods.metering import meter
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import fund, posted_by
from tests.pods.test_machine_admin import staff
from tests.pods.test_metering import running_pod

T0 = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)


def test_it_counts_its_machines_pods_per_month_minus_the_fee(alice, listed, parts, charlie):
    renter = charlie.memberships.get().team
    fund(renter, "100")
    mine = running_pod(renter, listed.machine, metered_until=T0)  # A40 at $0.79/h
    running_pod(renter, parts["machine"], metered_until=T0)  # the platform's machine
    # Two hours in October, one in November, posted (the minutes after them are still open).
    meter(until=posted_by(T0 + timedelta(hours=3), renter))
    lines = earnings.month_lines(listed.team)
    assert [(line.month, line.revenue) for line in lines] == [
        (date(2026, 11, 1), Decimal("0.79")),
        (date(2026, 10, 1), Decimal("1.58")),
    ]
    assert (lines[1].fee, lines[1].earned) == (Decimal("0.3792"), Decimal("1.2008"))
    totals = earnings.totals(listed.team, lines)
    assert totals["revenue"] == Decimal("2.37") and totals["earned"] == Decimal("1.8012")
    assert sum(amount for _, amount in totals["split"]) == totals["fee"]
    page = login(alice).get(reverse("hosting_earnings", args=[listed.team.slug])).content.decode()
    assert 'data-testid="earnings-chart"' in page and "Card fees" in page
    assert mine.public_id not in page  # machines, not the renters' pods


def test_staff_record_payouts_in_the_admin(alice, listed):
    response = staff().post(
        reverse("admin:hosting_payout_add"),
        {"team": listed.team.pk, "month": "2026-11-01", "amount": "12.50", "reference": "SEPA-1"},
    )
    assert response.status_code == 302
    payout = Payout.objects.get()
    assert payout.recorded_by.email == "staff@example.com" and payout.amount == Decimal("12.50")
    assert AuditEvent.objects.filter(action="hosting.payout_recorded", team=listed.team).exists()
    totals = earnings.totals(listed.team, [])
    assert (totals["paid"], totals["owed"]) == (Decimal("12.50"), Decimal("-12.50"))

"""Staff tools for the programs (edits audited), read-only referrals and commissions, manual
adjustments through the ledger, and the seeded programs."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import LedgerEntry
from pods.metering import meter
from referrals import seed
from referrals.commissions import process
from referrals.models import Commission, Program, Referrer
from teams.models import AuditEvent, User
from tests.conftest import login
from tests.pods.factories import posted_by
from tests.referrals.conftest import HOUR, T0, gpu_machine, referred, running_pod


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser(email="staff@example.com", password="x"))
    return client


def program_form(program: Program, **changes) -> dict:
    data = {
        "kind": program.kind,
        "name": program.name,
        "rate": str(program.rate),
        "starts_on": program.starts_on.isoformat(),
        "ends_on": program.ends_on.isoformat() if program.ends_on else "",
        "min_template_runtime": "1 00:00:00",
    }
    data.update(changes)
    return data


def test_it_audits_a_program_edited_in_the_admin(staff, programs):
    pods = programs["pods"]
    url = reverse("admin:referrals_program_change", args=[pods.pk])

    response = staff.post(url, program_form(pods, rate="0.04", ends_on="2026-12-31"))

    assert response.status_code == 302
    pods.refresh_from_db()
    assert pods.rate == Decimal("0.04")
    event = AuditEvent.objects.get(action="referral_program.changed")
    assert event.resource_id == pods.public_id
    assert event.details == {"rate": "0.04", "ends_on": "2026-12-31"}
    assert event.actor.email == "staff@example.com"


def test_it_refuses_two_programs_of_a_kind_at_the_same_time(staff, programs):
    response = staff.post(
        reverse("admin:referrals_program_add"),
        program_form(programs["pods"], name="Second pods program", starts_on="2026-06-01"),
    )
    assert response.status_code == 200
    assert "Another program of this kind runs at the same time" in response.content.decode()
    assert Program.objects.filter(kind="pods").count() == 1


def test_it_keeps_referrals_and_commissions_read_only(staff, alice, programs):
    referred(alice, "friend@example.com")
    for model in ("referral", "commission"):
        assert staff.get(reverse(f"admin:referrals_{model}_changelist")).status_code == 200
        assert staff.get(reverse(f"admin:referrals_{model}_add")).status_code == 403
    assert staff.get(reverse("admin:referrals_referrer_changelist")).status_code == 200


def test_it_posts_a_manual_adjustment_through_the_ledger(staff, alice, team, programs):
    friend = referred(alice, "friend@example.com")
    running_pod(friend, gpu_machine("1.00"))
    meter(until=posted_by(T0 + HOUR, friend))
    process()
    referrer = Referrer.objects.get(user=alice)
    url = reverse("admin:referrals_referrer_adjust", args=[referrer.pk])
    assert staff.get(url).status_code == 200

    response = staff.post(url, {"amount": "2.50", "reason": "Missed commissions in May"})

    assert response.status_code == 302
    entry = LedgerEntry.objects.get(kind="adjustment", team__memberships__user=alice)
    assert entry.amount == Decimal("2.50")
    assert entry.description == "Referral commission adjustment: Missed commissions in May"
    assert AuditEvent.objects.filter(
        action="billing.ledger.adjustment", resource_id=entry.public_id
    ).exists()
    adjustment = Commission.objects.get(kind="adjustment")
    assert adjustment.ledger_entry == entry
    assert Commission.objects.for_earner(alice).total() == Decimal("2.53")
    html = login(alice).get(reverse("referrals", args=[team.slug])).content.decode()
    assert "$2.53" in html
    call_command("check_ledger")


def test_the_commission_rows_are_append_only(alice, programs):
    friend = referred(alice, "friend@example.com")
    running_pod(friend, gpu_machine("1.00"))
    meter(until=posted_by(T0 + HOUR, friend))
    process()
    commission = Commission.objects.first()
    with pytest.raises(PermissionError):
        commission.save()
    with pytest.raises(PermissionError):
        Commission.objects.all().delete()


def test_it_seeds_the_three_programs_once(db):
    out = io.StringIO()
    seed.run(out)
    seed.run(out)
    rates = dict(Program.objects.values_list("kind", "rate"))
    assert rates == {
        "pods": Decimal("0.03"),
        "serverless": Decimal("0.05"),
        "templates": Decimal("0.01"),
    }
    assert Program.objects.get(kind="templates").min_runtime_minutes == 24 * 60
    assert AuditEvent.objects.filter(action="referral_program.created").count() == 3

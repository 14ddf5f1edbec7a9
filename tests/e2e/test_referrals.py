"""Referrals in a real browser: alice copies her link from the Referrals page, dana opens it,
signs up and verifies her e-mail; the referral is attributed, and once dana's pod usage is
processed alice sees her (masked), her spend and the commission, month by month."""

import io
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from pods.metering import close_delay, meter
from referrals.commissions import process
from referrals.models import Referral
from referrals.seed import run as seed_programs
from teams.models import User
from tests.e2e.test_foundation import CONFIRM_LINK, sign_up, verify_email
from tests.referrals.conftest import gpu_machine, running_pod


@pytest.fixture(autouse=True)
def referral_settings(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.REFERRAL_COMMIT_LAG_SECONDS = 0


@pytest.mark.django_db(transaction=True)
def test_it_attributes_a_signup_through_the_referral_link(
    verified_user, login_page, new_page, mail_link, shot
):
    seed_programs(io.StringIO())
    alice = verified_user("alice@example.com")
    slug = alice.memberships.get().team.slug
    page = login_page(alice, permissions=["clipboard-read", "clipboard-write"])
    page.goto(f"/t/{slug}/referrals/")
    expect(page.get_by_test_id("worked-example")).to_contain_text("$60.00")
    link = page.get_by_test_id("referral-link").input_value()
    assert link.endswith(f"/?ref={alice.referral_code}")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == link
    shot(page, "referrals-empty")

    dana = new_page()
    dana.goto(link)
    dana.get_by_role("link", name="Sign up").first.click()
    sign_up(dana, "dana@example.com")
    verify_email(dana, mail_link(CONFIRM_LINK, to="dana@example.com"))
    expect(dana.get_by_role("heading", name="Dashboard")).to_be_visible()
    shot(dana, "referred-dashboard")

    user = User.objects.get(email="dana@example.com")
    referral = Referral.objects.get(referred_user=user)
    assert referral.referrer == alice
    # From the next whole hour: usage reaches the ledger (and commissions) one hour per row.
    start = referral.created_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    running_pod(referral.team, gpu_machine("2.00"), since=start)
    meter(until=start + timedelta(hours=1))  # an hour at $2/h
    # Its row is posted by the team's tick close_delay after the hour (the pod runs on: open).
    meter(until=start + timedelta(hours=1) + close_delay(referral.team_id))
    process()

    page.reload()
    row = page.get_by_test_id("referred-user")
    expect(row).to_contain_text("d***@example.com")
    expect(row).to_contain_text("$2.00")
    expect(page.get_by_test_id("referred-count")).to_have_text("1")
    expect(page.get_by_test_id("earned-total")).to_have_text("$0.06")
    shot(page, "referrals-with-friend")

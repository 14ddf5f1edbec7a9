"""The foundation in a real browser: sign up, verify the e-mail, convert the personal account to
a team, invite a dev by link; a second person signs up through the link and joins; the audit
log shows both actions."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, totp_code

CONFIRM_LINK = r"https?://\S+/accounts/confirm-email/\S+/"


@pytest.fixture(autouse=True)
def mandatory_verification(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def sign_up(page: Page, email: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()


def nav(page: Page, label: str) -> None:
    page.locator(".console-sidebar").get_by_role("link", name=label).click()


def verify_email(page: Page, link: str) -> None:
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()


@pytest.mark.django_db(transaction=True)
def test_it_signs_up_converts_invites_and_joins(new_page, mail_link, shot):
    alice = new_page()
    alice.goto("/accounts/signup/")
    shot(alice, "signup")
    sign_up(alice, "alice@example.com")
    shot(alice, "verification-sent")

    verify_email(alice, mail_link(CONFIRM_LINK, to="alice@example.com"))
    expect(alice.get_by_role("heading", name="Dashboard")).to_be_visible()
    shot(alice, "dashboard-new-user")

    nav(alice, "Team")
    alice.get_by_role("link", name="Convert to a team").click()
    alice.fill("input[name=name]", "Acme GPU")
    alice.check("input[name=confirm]")
    shot(alice, "convert")
    alice.get_by_role("button", name="Convert to a team").click()
    expect(alice.get_by_text("Acme GPU is now a team account")).to_be_visible()

    alice.get_by_test_id("invite-role").select_option("dev")
    alice.get_by_role("button", name="Create link").click()
    invites = alice.get_by_test_id("pending-invites")
    expect(invites).to_contain_text("Dev")
    link = invites.locator("input").first.input_value()
    assert re.search(r"/invite/[\w-]+/$", link)
    shot(alice, "pending-invite")

    bob = new_page()
    bob.goto(link)
    expect(bob.get_by_test_id("invite-team")).to_have_text("Acme GPU")
    expect(bob.get_by_test_id("invite-role")).to_have_text("Dev")
    shot(bob, "invite-anonymous")
    bob.get_by_role("link", name="Sign up and join").click()
    sign_up(bob, "bob@example.com")
    verify_email(bob, mail_link(CONFIRM_LINK, to="bob@example.com"))
    expect(bob.get_by_test_id("join-team")).to_be_visible()
    shot(bob, "invite-signed-in")
    bob.get_by_test_id("join-team").click()
    expect(bob.get_by_text("Welcome to Acme GPU! You joined as Dev.")).to_be_visible()
    shot(bob, "joined")

    nav(alice, "Team")
    expect(alice.get_by_test_id("members")).to_contain_text("bob@example.com")
    nav(alice, "Audit log")
    events = alice.get_by_test_id("audit-events")
    expect(events).to_contain_text("invite.created")
    expect(events).to_contain_text("invite.accepted")
    expect(events).to_contain_text("team.converted")
    shot(alice, "audit-log")


@pytest.mark.django_db(transaction=True)
def test_it_manages_api_keys_and_two_factor(verified_user, login_page, shot):
    user = verified_user("erin@example.com")
    slug = user.memberships.get().team.slug
    page = login_page(user)
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(f"/t/{slug}/")
    shot(page, "dashboard")
    page.goto(f"/t/{slug}/settings/")
    page.get_by_role("link", name="API keys").first.click()
    page.fill("input[name=name]", "Training cluster")
    page.get_by_label("Read-only").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-api-key").input_value()
    assert secret.startswith("rpa_")
    shot(page, "api-key-created")
    page.get_by_role("button", name="Enabled").click()
    expect(page.get_by_role("button", name="Disabled")).to_be_visible()
    page.reload()
    expect(page.locator("#new-api-key")).to_have_count(0)
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No API keys yet")).to_be_visible()

    page.goto("/accounts/2fa/")
    shot(page, "two-factor")
    page.get_by_role("link", name="Activate").click()
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    totp_secret = page.locator("#authenticator_secret").input_value()
    shot(page, "two-factor-activate")
    page.fill("input[name=code]", totp_code(totp_secret))
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#recovery_codes")).to_be_visible()
    shot(page, "recovery-codes")

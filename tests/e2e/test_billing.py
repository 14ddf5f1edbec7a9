"""A billing member tops up $25 with the test card through Stripe.js (localstripe's stand-in);
the emulator's signed webhook credits the balance; the receipt PDF downloads."""

import socket

import pytest
from playwright.sync_api import expect

from billing import emulator
from billing.models import Payment
from teams.models import Membership, Role, Team

WEBHOOK_SECRET = "whsec_e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def localstripe_base():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = emulator.start(port)
    try:
        emulator.wait_until_up(base, process=process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def stripe_emulator(localstripe_base, live_server, settings):
    settings.STRIPE_API_BASE = localstripe_base
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_PUBLISHABLE_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    emulator.register_webhook(
        localstripe_base, url=f"{live_server.url}/billing/stripe/webhook/", secret=WEBHOOK_SECRET
    )
    return localstripe_base


@pytest.mark.django_db(transaction=True)
def test_it_tops_up_25_dollars_with_the_test_card(
    stripe_emulator, verified_user, login_page, shot, tmp_path
):
    user = verified_user("billy@example.com")
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=user, team=team, role=Role.BILLING)
    page = login_page(user)

    page.goto("/t/acme/billing/top-up/")
    expect(page.get_by_test_id("stripe-test-mode")).to_contain_text("4242 4242 4242 4242")
    page.fill("#id_amount", "25")
    card = page.locator("#card-element")
    card.locator("input[placeholder=number]").fill("4242424242424242")
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("30")
    card.locator("input[placeholder=cvc]").fill("123")
    card.locator("input[placeholder=postal_code]").fill("10001")
    shot(page, "top-up-form")
    page.click("#pay-button")

    expect(page.get_by_test_id("payment-status")).to_have_text("Succeeded", timeout=20_000)
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    shot(page, "payment-succeeded")

    with page.expect_download() as download_info:
        page.get_by_test_id("receipt-pdf").click()
    path = tmp_path / "receipt.pdf"
    download_info.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF")
    assert download_info.value.suggested_filename.startswith("receipt-R-")

    page.goto("/t/acme/billing/")
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    shot(page, "billing-overview")
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.created_by == user


@pytest.mark.django_db(transaction=True)
def test_it_saves_a_card_that_needs_3d_secure(stripe_emulator, verified_user, login_page, shot):
    user = verified_user("ada@example.com")
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    page = login_page(user)

    page.goto("/t/acme/billing/cards/")
    card = page.locator("#card-element")
    card.locator("input[placeholder=number]").fill("4000002500003155")
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("30")
    card.locator("input[placeholder=cvc]").fill("123")
    page.click("#pay-button")
    page.get_by_role("button", name="Complete authentication").click()

    expect(page.get_by_test_id("saved-card")).to_contain_text("Visa •••• 3155")
    expect(page.get_by_test_id("saved-card")).to_contain_text("Default")
    shot(page, "card-saved")

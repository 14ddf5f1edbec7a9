"""The front page and the dashboard in Chromium: a visitor sees GPU prices; a new admin's
checklist ticks "Add credit" after a real top-up through Stripe.js (the emulator's stand-in) and
"Deploy a pod" after a deploy; a declined card is told once; no page logs a JS error (the
autouse no_console_errors of conftest.py)."""

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from pods.services import deploy_pod
from teams.models import Membership, Role, Team
from tests.e2e.test_billing import localstripe_base, stripe_emulator
from tests.pods.factories import catalogue, deploy_request

__all__ = ["localstripe_base", "stripe_emulator"]


def step(page, key: str):
    return page.locator(f'[data-step="{key}"]')


def fill_card(page, number: str) -> None:
    card = page.locator("#card-element")
    card.locator("input[placeholder=number]").fill(number)
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("30")
    card.locator("input[placeholder=cvc]").fill("123")
    card.locator("input[placeholder=postal_code]").fill("10001")


@pytest.fixture
def admin(verified_user):
    user = verified_user("ada@example.com")
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    return user, team


@pytest.mark.django_db(transaction=True)
def test_a_visitor_sees_gpu_prices_and_free_gpus_on_the_front_page(new_page, live_url, shot):
    cache.clear()
    catalogue()
    page = new_page()
    page.goto(live_url("/"))
    prices = page.get_by_test_id("gpu-prices")
    a40 = prices.locator('tr[data-gpu="A40"]')
    expect(a40.get_by_test_id("secure-price")).to_have_text("$0.79/h")
    expect(a40.get_by_test_id("free-gpus")).to_have_text("4 free")
    expect(page.get_by_test_id("front-signup")).to_have_attribute("href", "/accounts/signup/")
    shot(page, "front-page")
    page.get_by_test_id("front-login").click()
    expect(page).to_have_url(live_url("/accounts/login/"))


@pytest.mark.django_db(transaction=True)
def test_the_checklist_ticks_after_a_top_up_and_a_deploy(stripe_emulator, admin, login_page, shot):
    user, team = admin
    parts = catalogue()
    page = login_page(user)
    page.goto("/t/acme/")
    expect(step(page, "add_credit")).to_have_attribute("data-done", "false")
    expect(step(page, "deploy")).to_have_attribute("data-done", "false")
    shot(page, "new-dashboard")

    page.goto("/t/acme/billing/top-up/")
    page.get_by_test_id("user-menu").click()  # Bootstrap's JS works next to Stripe.js
    expect(page.locator(".dropdown-menu-end")).to_be_visible()
    page.keyboard.press("Escape")
    page.fill("#id_amount", "25")
    fill_card(page, "4242424242424242")
    page.click("#pay-button")
    expect(page.get_by_test_id("payment-status")).to_have_text("Succeeded", timeout=20_000)

    page.goto("/t/acme/")
    expect(step(page, "add_credit")).to_have_attribute("data-done", "true")
    expect(step(page, "deploy")).to_have_attribute("data-done", "false")
    expect(page.get_by_test_id("next-step")).not_to_contain_text("Add credit")
    shot(page, "after-top-up")

    pod = deploy_pod(actor=user, team=team, request=deploy_request(parts["a40"], name="trainer"))
    page.reload()
    expect(step(page, "deploy")).to_have_attribute("data-done", "true")
    row = page.get_by_test_id("running-pods").locator(f'[data-pod="{pod.public_id}"]')
    expect(row).to_contain_text("trainer")
    expect(row.get_by_test_id("pod-cost")).to_contain_text("/h")
    expect(page.get_by_test_id("spend-today")).to_have_text("$0.00")
    shot(page, "after-deploy")


@pytest.mark.django_db(transaction=True)
def test_a_declined_charge_is_told_once(stripe_emulator, admin, login_page, shot):
    user, _ = admin
    page = login_page(user)
    page.goto("/t/acme/billing/top-up/")
    page.fill("#id_amount", "25")
    fill_card(page, "4000000000000341")  # saved fine, declined when charged
    page.click("#pay-button")
    expect(page.get_by_test_id("failure-reason")).to_contain_text("declined", timeout=20_000)
    shot(page, "declined")
    expect(page.locator("main").get_by_text("declined")).to_have_count(1)

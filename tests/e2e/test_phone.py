"""Every page of the console on a phone (390 px, an iPhone 12 to 15): nothing is wider than
the screen, so nothing scrolls sideways, and the top bar's account menu stays on screen with
its icon (the e-mail shows from 576 px)."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.e2e.test_pod_origin import console
from tests.e2e.test_pods import signed_in
from tests.pods.factories import catalogue
from tests.serverless.factories import an_endpoint

__all__ = ["console"]  # daphne: the pods page's live updates need its websocket

PHONE = {"width": 390, "height": 844}
PAGES = [
    "dashboard", "pod_list", "pod_deploy", "endpoint_list", "endpoint_create", "template_list",
    "template_create", "storage", "billing", "billing_ledger",
    "billing_cards", "hosting", "referrals", "members", "settings", "api_keys", "ssh_keys",
    "registry_credentials", "audit_log",
]  # fmt: skip
WIDEST = """() => Math.max(document.documentElement.scrollWidth,
    ...[...document.querySelectorAll('.console-main *')].map(e => e.getBoundingClientRect().right
        * (getComputedStyle(e).position === 'fixed' || e.closest('.table-responsive, pre,'
            + ' .dropdown-menu, .modal, .offcanvas, .overflow-auto') ? 0 : 1)))"""


@pytest.mark.django_db(transaction=True)
def test_every_console_page_fits_a_phone(console, new_page, verified_user):
    catalogue()
    user = verified_user("a.rather.long.address@example.com")
    team = user.memberships.get().team
    endpoint = an_endpoint(team)
    page = signed_in(new_page, user, console)
    page.set_viewport_size(PHONE)
    urls = [reverse(name, args=[team.slug]) for name in PAGES]
    wider = {}
    for url in [*urls, endpoint.get_absolute_url()]:
        page.goto(console + url)
        if (width := page.evaluate(WIDEST)) > PHONE["width"]:
            wider[url] = width
    assert wider == {}
    menu = page.get_by_test_id("user-menu")
    expect(menu).to_be_visible()
    assert menu.bounding_box()["x"] + menu.bounding_box()["width"] <= PHONE["width"]
    expect(menu).to_have_attribute("aria-label", "Account: a.rather.long.address@example.com")

"""Every console page under its Content-Security-Policy in Chromium: no violation reported and
no script error that the same page without the policy does not have too (the emulator's
Stripe.js stand-in throws one of its own), signed in as a staff Admin (who may open every page)
and anonymous, with Stripe.js served by the local emulator as under `make run`."""

import json

import pytest
from django.urls import reverse

from serverless import services
from teams.models import Membership, Role, Team
from tests.e2e.test_billing import localstripe_base, stripe_emulator
from tests.pods.factories import catalogue, stopped_pod
from tests.serverless.factories import an_endpoint

__all__ = ["localstripe_base", "stripe_emulator"]

# Recorded before any page script runs: what the policy blocked, as the page saw it.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(event.violatedDirective + " " + event.blockedURI);
});
"""
TEAM_PAGES = [
    ("dashboard", []),
    ("pod_list", []),
    ("pod_deploy", []),
    ("pod_detail", ["pod"]),
    ("pod_terminal", ["pod"]),
    ("template_list", []),
    ("template_create", []),
    ("storage", []),
    ("billing", []),
    ("billing_ledger", []),
    ("billing_top_up", []),
    ("billing_cards", []),
    ("members", []),
    ("settings", []),
    ("api_keys", []),
    ("ssh_keys", []),
    ("registry_credentials", []),
    ("audit_log", []),
    ("referrals", []),
    ("endpoint_list", []),
    ("endpoint_create", []),
    ("endpoint_detail", ["endpoint"]),
    ("endpoint_edit", ["endpoint"]),
    ("endpoint_job", ["endpoint", "job"]),
]
ACCOUNT_PAGES = ["account_email", "account_change_password", "mfa_index", "mfa_activate_totp"]
ANONYMOUS_PAGES = ["account_login", "account_signup", "account_reset_password"]


def watched(page):
    page.add_init_script(WATCH)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(f"script error: {error}"))
    return page


def visit(page, url: str) -> tuple[list[str], list[str]]:
    """(script errors, CSP violations) of one page load."""
    page.errors.clear()
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return list(page.errors), page.evaluate("window.__csp")


def problems_on(page, free, url: str) -> list[str]:
    """What breaks on `url` under the CSP: violations, and errors the page lacks without it."""
    errors, violations = visit(page, url)
    errors_without_csp, _ = visit(free, url)
    return violations + [error for error in errors if error not in errors_without_csp]


# live_server serves no websockets (the live pages' handshakes fail): script errors are judged
# against the same pages without the policy instead.
@pytest.mark.console_errors_expected
@pytest.mark.django_db(transaction=True)
def test_every_console_page_works_under_its_csp(
    stripe_emulator, verified_user, login_page, new_page, live_url
):
    admin = verified_user("ada@example.com")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=admin, team=team, role=Role.ADMIN)
    pod = stopped_pod(team, catalogue()["machine"], ports=[{"port": 8080, "protocol": "http"}])
    page = watched(login_page(admin))
    free = watched(login_page(admin, bypass_csp=True))
    endpoint = an_endpoint(team)
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {"p": 1}})
    ids = {"pod": pod.public_id, "endpoint": endpoint.public_id, "job": job.public_id}
    urls = [
        reverse(name, args=[team.slug, *[ids[kind] for kind in extra]])
        for name, extra in TEAM_PAGES
    ]
    urls += [reverse(name) for name in ACCOUNT_PAGES] + [reverse("admin:index")]
    found = {url: problems_on(page, free, live_url(url)) for url in urls}
    anonymous, anonymous_free = watched(new_page()), watched(new_page(bypass_csp=True))
    for name in ANONYMOUS_PAGES:
        found[name] = problems_on(anonymous, anonymous_free, live_url(reverse(name)))
    broken = {url: sorted(set(seen)) for url, seen in found.items() if seen}
    assert broken == {}, json.dumps(broken, indent=1)

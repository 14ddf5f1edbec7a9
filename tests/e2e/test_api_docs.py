"""The REST API docs page in Chromium under the console's CSP: Swagger UI renders the pods
operations from /api/v1/schema/ with no policy violation and no script error."""

import pytest

from teams.models import Membership, Role, Team

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@pytest.mark.django_db(transaction=True)
def test_the_docs_render_under_the_csp(verified_user, login_page, live_url):
    user = verified_user("docs@example.com")
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    page = login_page(user)
    page.add_init_script(WATCH)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_url("/api/docs/"))
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/pods/']", timeout=15000)
    assert page.locator(".opblock").count() > 10
    assert errors == [] and page.evaluate("window.__csp") == []

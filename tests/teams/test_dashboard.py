"""The dashboard's getting-started steps link only to pages that exist and follow the role."""

from django.urls import reverse

from teams import services
from teams.models import Role
from tests.conftest import login


def test_it_walks_a_new_user_through_the_first_steps(charlie):
    team = charlie.memberships.get().team
    response = login(charlie).get(reverse("dashboard", args=[team.slug]))
    page = response.content.decode()
    assert 'data-testid="getting-started"' in page
    assert reverse("convert_team", args=[team.slug]) in page
    assert reverse("api_keys", args=[team.slug]) in page
    assert reverse("mfa_index") in page


def test_it_marks_steps_done(team, alice, bob):
    services.create_api_key(team=team, actor=alice, name="x", permission="read_only")
    page = login(alice).get(reverse("dashboard", args=["acme"])).content.decode()
    assert page.count(">Done</span>") == 2  # invite your team (bob is here) and the API key


def test_it_shows_only_steps_the_role_can_do(team, member_with_role):
    page = member_with_role(Role.BASIC).get(reverse("dashboard", args=["acme"])).content.decode()
    assert "Create an API key" not in page
    assert "Add credit" not in page
    assert "Turn on two-factor authentication" in page

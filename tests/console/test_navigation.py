import pytest
from django.urls import reverse

from teams.models import Role

SETTINGS_TABS = {
    "api_keys": {Role.ADMIN},
    "ssh_keys": {Role.ADMIN, Role.DEV, Role.BASIC},
    "registry_credentials": {Role.ADMIN, Role.DEV},
}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEV, Role.BASIC])
def test_settings_shows_the_tabs_a_role_can_open(team, member_with_role, role):
    client = member_with_role(role)
    page = client.get(reverse("ssh_keys", args=[team.slug])).content.decode()
    for name, roles in SETTINGS_TABS.items():
        assert (reverse(name, args=[team.slug]) in page) == (role in roles), name


@pytest.mark.parametrize(
    ("role", "target"), [(Role.ADMIN, "settings"), (Role.DEV, "ssh_keys"), (Role.BASIC, "ssh_keys")]
)
def test_the_sidebar_settings_link_opens_a_page_the_role_may_see(
    team, member_with_role, role, target
):
    client = member_with_role(role)
    page = client.get(reverse("dashboard", args=[team.slug])).content.decode()
    assert f'href="{reverse(target, args=[team.slug])}"' in page


def test_billing_members_get_no_settings_link(team, member_with_role):
    page = member_with_role(Role.BILLING).get(reverse("dashboard", args=[team.slug]))
    assert "bi-gear" not in page.content.decode()

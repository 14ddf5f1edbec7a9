"""The allauth pages render with the console's templates, for visitors and signed-in users."""

import pytest
from django.urls import reverse

from tests.conftest import login

ENTRANCE = ["account_login", "account_signup", "account_reset_password"]
MANAGE = ["account_email", "account_change_password", "mfa_index"]


@pytest.mark.parametrize("name", ENTRANCE)
def test_it_renders_sign_in_pages_on_the_card_layout(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert b"auth-shell" in response.content
    assert b"form-control" in response.content


@pytest.mark.parametrize("name", MANAGE)
def test_it_renders_account_pages_inside_the_console(alice, name):
    client = login(alice)
    client.get(reverse("members", args=[alice.memberships.get().team.slug]))
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert b"console-sidebar" in response.content
    assert b"list-group-item" in response.content


def test_it_asks_for_the_password_again_on_the_card_layout(alice):
    response = login(alice).get(reverse("account_reauthenticate"))
    assert response.status_code == 200
    assert b"auth-shell" in response.content
    assert b'name="password"' in response.content

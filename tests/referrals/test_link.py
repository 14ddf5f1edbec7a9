"""The referral link: `?ref=<code>` on any page, a 30-day first-touch cookie, and signup."""

from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client

from referrals.models import Referral, Referrer
from referrals.services import attribute_signup
from teams.models import AuditEvent, User
from tests.conftest import PASSWORD, login
from tests.referrals.conftest import new_account

COOKIE = settings.REFERRAL_COOKIE_NAME


def sign_up(client: Client, email: str):
    response = client.post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302, response.content[:500]
    return User.objects.get(email__iexact=email)


def test_it_remembers_a_valid_code_for_30_days_from_any_page(alice):
    client = Client()
    response = client.get(f"/accounts/login/?ref={alice.referral_code}")
    cookie = response.cookies[COOKIE]
    assert cookie.value == alice.referral_code
    assert cookie["max-age"] == 30 * 24 * 3600
    assert cookie["httponly"]


def test_it_ignores_unknown_codes(db):
    response = Client().get("/accounts/login/?ref=nosuchcd")
    assert COOKIE not in response.cookies


def test_the_first_link_opened_wins(alice, charlie):
    client = Client()
    client.get(f"/accounts/login/?ref={alice.referral_code}")
    response = client.get(f"/accounts/signup/?ref={charlie.referral_code}")
    assert COOKIE not in response.cookies
    assert client.cookies[COOKIE].value == alice.referral_code


def test_a_new_link_replaces_a_code_that_is_no_longer_valid(alice, charlie):
    client = Client()
    client.get(f"/accounts/login/?ref={alice.referral_code}")
    User.objects.filter(pk=alice.pk).update(is_active=False)
    client.get(f"/accounts/login/?ref={charlie.referral_code}")
    assert client.cookies[COOKIE].value == charlie.referral_code


def test_signing_up_through_the_link_attributes_the_new_account(alice):
    client = Client()
    client.get(f"/?ref={alice.referral_code}")

    dana = sign_up(client, "dana@example.com")

    referral = Referral.objects.get(referred_user=dana)
    assert referral.referrer == alice
    assert referral.team.memberships.get().user == dana
    assert referral.code == alice.referral_code
    assert Referrer.objects.filter(user=alice).exists()
    event = AuditEvent.objects.get(action="referral.attributed")
    assert event.team == referral.team
    assert event.actor == dana


def test_signing_up_without_the_link_attributes_nothing(alice):
    sign_up(Client(), "erin@example.com")
    assert not Referral.objects.exists()


def test_an_existing_account_never_counts(alice, charlie):
    EmailAddress.objects.create(user=charlie, email=charlie.email, primary=True, verified=True)
    client = Client()
    client.get(f"/accounts/login/?ref={alice.referral_code}")
    response = client.post(
        "/accounts/login/", {"login": charlie.email, "password": PASSWORD}, follow=True
    )
    assert response.status_code == 200
    assert not Referral.objects.exists()
    # Signed in, the leftover code is dropped and a new link sets none.
    assert client.cookies[COOKIE].value == ""
    assert COOKIE not in login(charlie).get(f"/?ref={alice.referral_code}").cookies


def test_a_self_referral_through_an_address_alias_does_not_count(alice):
    client = Client()
    client.get(f"/?ref={alice.referral_code}")

    sign_up(client, "Alice+second@Example.com")

    assert not Referral.objects.exists()


def test_a_user_is_referred_once(alice, charlie):
    user, team = new_account("frank@example.com")
    assert attribute_signup(user=user, team=team, code=alice.referral_code)
    assert attribute_signup(user=user, team=team, code=charlie.referral_code) is None
    assert Referral.objects.get().referrer == alice

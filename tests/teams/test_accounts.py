"""Accounts through allauth's real views: signup, e-mail verification, login, password reset
and change, and TOTP two-factor authentication with recovery codes."""

import re

import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core import mail
from django.core.cache import cache
from django.test import Client

from teams.models import AuditEvent, Membership, Role, User
from tests.conftest import PASSWORD, make_user, totp_code

NEW_PASSWORD = "another-horse-staple-9"


@pytest.fixture(autouse=True)
def mandatory_verification(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    # allauth's rate limits (one confirmation mail per address per few minutes) live in the
    # cache, which outlives a test.
    cache.clear()


def link_in_mail(pattern: str) -> str:
    return re.search(pattern, mail.outbox[-1].body).group(0)


def sign_up(client: Client, email: str):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def verified_user(email: str) -> User:
    user = make_user(email)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def test_it_signs_up_with_an_email_and_creates_a_personal_account(db):
    response = sign_up(Client(), "dana@example.com")
    assert response.status_code == 302
    user = User.objects.get(email="dana@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.team.is_personal
    assert membership.role == Role.ADMIN
    assert AuditEvent.objects.filter(action="team.created", team=membership.team).exists()


def test_it_requires_email_verification_before_login(db):
    client = Client()
    sign_up(client, "dana@example.com")
    assert client.get("/").status_code == 200  # not signed in: the public front page
    link = link_in_mail(r"https?://\S+/accounts/confirm-email/\S+/")
    page = client.get(link)
    assert page.status_code == 200
    assert client.post(link).status_code == 302
    assert EmailAddress.objects.get(email="dana@example.com").verified
    assert AuditEvent.objects.filter(
        action="account.email_confirmed", resource_id="dana@example.com"
    )
    assert client.get("/").status_code == 302
    assert client.get("/")["Location"].startswith("/t/dana/")


def test_it_logs_in_and_out_with_email_and_password(db):
    verified_user("erin@example.com")
    client = Client()
    response = client.post("/accounts/login/", {"login": "erin@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 302
    assert client.get("/").url.startswith("/t/")
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 200  # not signed in: the public front page


def test_it_resets_a_forgotten_password(db):
    verified_user("erin@example.com")
    client = Client()
    client.post("/accounts/password/reset/", {"email": "erin@example.com"})
    link = link_in_mail(r"https?://\S+/accounts/password/reset/key/\S+/")
    form_url = client.get(link)["Location"]
    response = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert User.objects.get(email="erin@example.com").check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="account.password_reset", team=None).exists()


def test_it_changes_the_password(db):
    user = verified_user("erin@example.com")
    client = Client()
    client.force_login(user)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="account.password_changed", actor=user).exists()


def password_login(client: Client, email: str):
    return client.post("/accounts/login/", {"login": email, "password": PASSWORD})


def activate_totp(client: Client) -> str:
    page = client.get("/accounts/2fa/totp/activate/")
    secret = re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7=]+)"', page.text).group(1)
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302, response.content
    return secret


def test_it_protects_login_with_totp_and_accepts_recovery_codes(
    db, django_capture_on_commit_callbacks
):
    verified_user("erin@example.com")
    with time_machine.travel("2030-01-01 12:00:00", tick=False):
        client = Client()
        password_login(client, "erin@example.com")
        # Changing 2FA settings asks for the password again first.
        assert client.get("/accounts/2fa/totp/activate/").status_code == 302
        client.post("/accounts/reauthenticate/", {"password": PASSWORD})
        with django_capture_on_commit_callbacks(execute=True):
            secret = activate_totp(client)
    assert Authenticator.objects.filter(type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action="account.2fa_added", details__type="totp").exists()
    client.get("/accounts/2fa/recovery-codes/")
    codes = Authenticator.objects.get(type=Authenticator.Type.RECOVERY_CODES)
    recovery = codes.wrap().get_unused_codes()[0]

    with time_machine.travel("2030-01-01 12:05:00", tick=False):
        client = Client()
        response = password_login(client, "erin@example.com")
        assert response["Location"] == "/accounts/2fa/authenticate/"
        assert client.get("/").status_code == 200  # not signed in: the public front page
        wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
        assert wrong.status_code == 200
        assert (
            client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)}).status_code
            == 302
        )
        assert client.get("/").url.startswith("/t/")

    with time_machine.travel("2030-01-01 12:10:00", tick=False):
        client = Client()
        password_login(client, "erin@example.com")
        assert client.post("/accounts/2fa/authenticate/", {"code": recovery}).status_code == 302
        assert client.get("/").url.startswith("/t/")


def test_it_accepts_a_code_one_step_old_and_refuses_older(db):
    verified_user("fay@example.com")
    with time_machine.travel("2030-01-01 12:00:00", tick=False):
        client = Client()
        password_login(client, "fay@example.com")
        client.post("/accounts/reauthenticate/", {"password": PASSWORD})
        secret = activate_totp(client)

    with time_machine.travel("2030-01-01 12:05:00", tick=False):
        client = Client()
        password_login(client, "fay@example.com")
        stale = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret, 2)})
        assert stale.status_code == 200  # two steps (60 s) old: refused
        assert client.get("/").status_code == 200  # still signed out
        late = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret, 1)})
        assert late.status_code == 302  # typed just before the step rolled over
        assert client.get("/").url.startswith("/t/")

"""E-mails name the site by SITE_NAME (never the request's host) and each has an HTML version
in the console's frame (templates/emails/base.html)."""

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from billing import emails
from teams.mail import framed_html
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """allauth rate-limits confirmation mails in the cache, which outlives a test."""
    cache.clear()


def html_of(message) -> str:
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    return html


def sign_up(email: str) -> None:
    Client().post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def test_the_verification_mail_says_site_name_not_the_host(db, settings):
    settings.SITE_NAME = "Acme GPU Cloud"
    sign_up("dana@example.com")
    (message,) = mail.outbox
    assert message.body.startswith("Hello from Acme GPU Cloud!")
    assert "Thank you for using Acme GPU Cloud!" in message.body
    assert message.body.rstrip().endswith(urlsplit(settings.SITE_URL).netloc)
    assert message.subject.startswith(settings.ACCOUNT_EMAIL_SUBJECT_PREFIX)


def test_the_verification_mail_has_an_html_version_with_its_link(db, settings):
    settings.SITE_NAME = "Acme GPU Cloud"
    sign_up("dana@example.com")
    (message,) = mail.outbox
    html = html_of(message)
    assert "Acme GPU Cloud" in html and 'data-testid="email-body"' in html
    link = next(word for word in message.body.split() if "/accounts/confirm-email/" in word)
    assert f'<a href="{link}"' in html


def test_a_plain_text_body_is_escaped_in_the_html_version():
    html = framed_html(subject="s", body_text="<script>alert(1)</script> see http://x.test/")
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert '<a href="http://x.test/"' in html


def test_billing_mails_come_in_the_same_frame(team, alice, settings):
    settings.SITE_NAME = "Acme GPU Cloud"
    context = {"balance": Decimal("4.5"), "threshold": Decimal("10"), "top_up_url": "http://x/"}
    emails.send_to_billing("low_balance", team=team, context=context)
    (message,) = mail.outbox
    assert message.to == [alice.email]
    assert "$4.50" in message.body and "Acme GPU Cloud" in message.body
    html = html_of(message)
    assert 'data-testid="email-body"' in html and "<strong>$4.50</strong>" in html
    assert "&lt;strong&gt;" not in html  # our rendered template, not escaped twice

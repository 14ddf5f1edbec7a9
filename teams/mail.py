"""The one HTML frame of every e-mail (templates/emails/base.html): the billing e-mails and
allauth's account e-mails (teams.adapters) look like the console and name SITE_NAME."""

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import SafeString


def site_context() -> dict:
    return {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL}


def framed_html(*, subject: str, body_html: SafeString | None = None, body_text: str = "") -> str:
    """An HTML message: our rendered (already escaped) template, or a plain-text body."""
    context = {**site_context(), "subject": subject, "body_html": body_html, "body_text": body_text}
    return render_to_string("emails/base.html", context)

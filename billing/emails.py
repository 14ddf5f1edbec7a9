"""Billing e-mails: templates/emails/<name>-subject.txt, -body.txt and -body.html."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from teams.access import CAPABILITIES
from teams.mail import framed_html, site_context
from teams.models import Membership, Team


def billing_recipients(team: Team) -> list[str]:
    """Everyone who can manage the team's billing (Billing and Admin roles)."""
    members = Membership.objects.filter(team=team, role__in=CAPABILITIES["billing"])
    return sorted(members.values_list("user__email", flat=True))


def absolute(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


def send(name: str, *, to: list[str], context: dict) -> None:
    if not to:
        return
    context = {**site_context(), **context}
    subject = (
        settings.ACCOUNT_EMAIL_SUBJECT_PREFIX
        + render_to_string(f"emails/{name}-subject.txt", context).strip()
    )
    body = render_to_string(f"emails/{name}-body.txt", context)
    html = framed_html(
        subject=subject, body_html=render_to_string(f"emails/{name}-body.html", context)
    )
    message = EmailMultiAlternatives(subject, body, to=to)
    message.attach_alternative(html, "text/html")
    message.send()


def send_to_billing(name: str, *, team: Team, context: dict) -> None:
    send(name, to=billing_recipients(team), context={"team": team, **context})

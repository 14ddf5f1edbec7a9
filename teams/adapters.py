from types import SimpleNamespace
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from teams.mail import framed_html
from teams.services import create_personal_team
from teams.signup import run_after_signup


def current_site() -> SimpleNamespace:
    """What allauth's e-mails call the site ("Hello from {{ current_site.name }}!"): without
    django.contrib.sites it would be the request's host, e.g. "localhost:8100"."""
    return SimpleNamespace(name=settings.SITE_NAME, domain=urlsplit(settings.SITE_URL).netloc)


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            team = create_personal_team(user=user)
            run_after_signup(request=request, user=user, team=team)
        return user

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        super().send_mail(template_prefix, email, {**context, "current_site": current_site()})

    def render_mail(self, template_prefix, email, context, headers=None):
        """allauth's messages are plain text; each also gets its HTML version in our frame."""
        message = super().render_mail(template_prefix, email, context, headers=headers)
        if isinstance(message, EmailMultiAlternatives) and not message.alternatives:
            message.attach_alternative(
                framed_html(subject=message.subject, body_text=message.body), "text/html"
            )
        return message

"""Template helpers for team pages.

{% load teams_tags %}
{% if membership|can:"billing" %}...{% endif %}
{% getting_started %}      the dashboard's first steps for the current team
"""

from django import template
from django.urls import NoReverseMatch, reverse

from teams.access import role_can

register = template.Library()


@register.filter
def can(membership, capability: str) -> bool:
    return membership is not None and role_can(membership.role, capability)


def _url(name: str, slug: str, anchor: str = "") -> str | None:
    """A section that has not landed yet has no URL: the step then says "coming"."""
    try:
        return reverse(name, args=[slug]) + anchor
    except NoReverseMatch:
        return None


def _steps(team, user) -> list[dict]:
    from allauth.mfa.models import Authenticator

    invite_url = _url("convert_team", team.slug) if team.is_personal else _url("members", team.slug)
    return [
        {
            "capability": "billing",
            "icon": "wallet2",
            "title": "Add credit",
            "text": "Compute is prepaid and billed by the minute; the first top-up is $10 or more.",
            "url": _url("billing_top_up", team.slug),
            "done": None,
        },
        {
            "capability": "deploy",
            "icon": "rocket-takeoff",
            "title": "Deploy a pod",
            "text": "Pick a GPU, a template and disk sizes; it starts in seconds.",
            "url": _url("pod_deploy", team.slug),
            "done": None,
        },
        {
            "capability": "admin",
            "icon": "person-plus",
            "title": "Invite your team",
            "text": "Convert your personal account into a team, then send invite links with roles."
            if team.is_personal
            else "Send invite links with a role: basic, billing, dev or admin.",
            "url": invite_url,
            "done": team.memberships.count() > 1,
        },
        {
            "capability": "admin",
            "icon": "key",
            "title": "Create an API key",
            "text": "For the REST API, the Python SDK and the CLI.",
            "url": _url("api_keys", team.slug),
            "done": team.api_keys.exists(),
        },
        {
            "capability": "member",
            "icon": "shield-lock",
            "title": "Turn on two-factor authentication",
            "text": "Protect your login with an authenticator app and recovery codes.",
            "url": reverse("mfa_index"),
            "done": Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists(),
        },
    ]


@register.inclusion_tag("teams/_getting_started.html", takes_context=True)
def getting_started(context) -> dict:
    membership = context.get("membership")
    if membership is None:
        return {"steps": []}
    steps = [
        step
        for step in _steps(membership.team, context["request"].user)
        if role_can(membership.role, step["capability"])
    ]
    return {"steps": steps, "all_done": all(step["done"] for step in steps)}

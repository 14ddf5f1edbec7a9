"""Template helpers for team pages.

{% load teams_tags %}
{% if membership|can:"billing" %}...{% endif %}
"""

from django import template

from teams.access import role_can

register = template.Library()


@register.filter
def can(membership, capability: str) -> bool:
    return membership is not None and role_can(membership.role, capability)

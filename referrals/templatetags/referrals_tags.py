"""{% load referrals_tags %}{% template_earnings template %}: on a template card, what a public
template earned its creator, shown to the creator only. Pods' templates load this tag, so pods
code stays unaware of referrals."""

from django import template

from referrals import reports

register = template.Library()


@register.inclusion_tag("referrals/_template_earnings.html", takes_context=True)
def template_earnings(context, pod_template) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"card": None}
    return {"card": reports.template_card(pod_template, user)}

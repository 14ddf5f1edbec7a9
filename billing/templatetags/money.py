"""{% load money %}{{ amount|usd }}, {{ rate|usd:4 }}: display money without ever using float."""

from django import template

from billing.money import format_usd

register = template.Library()


@register.filter
def usd(amount, places: int = 2) -> str:
    return format_usd(amount, int(places))

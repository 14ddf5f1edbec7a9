"""{% load billing_banner %}{% stripe_test_mode_banner %}: the site-wide test-mode notice."""

from django import template

from billing import stripe_gateway

register = template.Library()


@register.inclusion_tag("billing/_test_mode_banner.html")
def stripe_test_mode_banner() -> dict:
    config = stripe_gateway.config()
    return {"show": config.configured and config.test_mode, "emulator": config.uses_emulator}

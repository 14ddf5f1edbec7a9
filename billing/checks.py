"""Start-up checks (`manage.py check`, run before `migrate` and by `make run`)."""

from django.conf import settings
from django.core import checks

from billing import stripe_gateway


@checks.register(checks.Tags.security)
def stripe_webhook_secret_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Real Stripe keys without a webhook secret would leave card payments uncredited; refuse
    to start rather than find out at the first top-up."""
    if settings.STRIPE_SECRET_KEY and not settings.STRIPE_WEBHOOK_SECRET:
        return [checks.Error(stripe_gateway.MISSING_WEBHOOK_SECRET, id="billing.E001")]
    return []

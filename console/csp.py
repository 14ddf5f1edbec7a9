"""The console's Content-Security-Policy: django-csp's middleware with the static directives of
settings.CONTENT_SECURITY_POLICY, plus the sources that follow settings a deployment or a test
sets at run time: Stripe.js (js.stripe.com, or the local emulator at STRIPE_API_BASE) and the
pod hosts under PROXY_DOMAIN (a sign-in form's redirects end on one)."""

from __future__ import annotations

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings

from pods.connect.proxy import pod_host_suffix, site_is_https

STRIPE = {
    "script-src": ["https://js.stripe.com"],
    "connect-src": ["https://api.stripe.com"],
    "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
}


def runtime_sources() -> dict[str, list[str]]:
    base = settings.STRIPE_API_BASE
    sources = {name: [base] for name in STRIPE} if base else {k: list(v) for k, v in STRIPE.items()}
    if suffix := pod_host_suffix():
        sources["form-action"] = [f"{'https' if site_is_https() else 'http'}://*{suffix}"]
    return sources


class ConsoleCSPMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            update = dict(parts.update or {})
            for directive, sources in runtime_sources().items():
                update[directive] = [*update.get(directive, []), *sources]
            parts.update = update
        return parts

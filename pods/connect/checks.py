"""`manage.py check --deploy`: pods must be served on an origin that cannot reach the console's
cookies (README, "Pods on their own origin")."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

from pods.connect.proxy import proxy_domain

HINT = (
    "Serve pods under a registrable domain of their own (console.example.com, pods on "
    "*.example-pods.net) with a wildcard DNS record and certificate; see the README."
)


def shares_cookie_scope(pod_domain: str, console_host: str) -> bool:
    """Could a page on a pod host set a cookie the console receives? Yes when one is the other
    or under it, or when both sit under the same parent (the last two labels: this does not
    consult the public suffix list, so two registrable domains under e.g. co.uk also match)."""
    if pod_domain == console_host or console_host.endswith("." + pod_domain):
        return True
    if pod_domain.endswith("." + console_host):
        return True
    parent = pod_domain.split(".")[-2:]
    return len(parent) == 2 and console_host.split(".")[-2:] == parent


@register(Tags.security, deploy=True)
def check_proxy_domain(app_configs, **kwargs) -> list[Warning]:
    domain = proxy_domain().rsplit(":", 1)[0]
    console_host = (urlsplit(settings.SITE_URL).hostname or "").lower()
    if not domain:
        message = (
            "PROXY_DOMAIN is not set: pods' HTTP ports are reachable only through the "
            "sandboxed path form /proxy/, where apps that need their own origin break."
        )
        return [Warning(message, hint=HINT, id="pods.W001")]
    if shares_cookie_scope(domain, console_host):
        message = (
            f"PROXY_DOMAIN {domain} and the console's host {console_host} share a parent "
            "domain: a pod's page can set cookies (document.cookie, Domain=) that the "
            "console receives."
        )
        return [Warning(message, hint=HINT, id="pods.W002")]
    return []

"""Security headers and production settings. In subprocesses with a production-like environment
(settings are read once per process): `manage.py check --deploy --fail-level WARNING` is clean,
loosening any of them fails it, and the responses really carry HSTS, the CSP, __Host- cookies
and the redirect. In-process: the CSP's run-time sources (Stripe.js, pod hosts)."""

import json
import os
import secrets
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from django.db import connection

from tests.pods.factories import catalogue, stopped_pod

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "console.example.com",
    "SITE_URL": "https://console.example.com",
    "PROXY_DOMAIN": "example-pods.net",
    "SECURE_COOKIES": "1",
    "STRIPE_API_BASE": "",  # real Stripe: js.stripe.com in the CSP
}
# What a TLS-terminating proxy in front of the console sends.
PROBE = textwrap.dedent(
    """
    import json, django
    django.setup()
    from django.conf import settings
    from django.test import Client
    client = Client(HTTP_HOST="console.example.com")
    page = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    plain = client.get("/accounts/login/?next=/x")
    health = client.get("/healthz")
    print(json.dumps({
        "status": page.status_code,
        "csp": page.get("Content-Security-Policy", ""),
        "hsts": page.get("Strict-Transport-Security", ""),
        "cookies": {m.key: m.output() for m in page.cookies.values()},
        "plain": [plain.status_code, plain.get("Location", "")],
        "health": health.status_code,
        "session_cookie": settings.SESSION_COOKIE_NAME,
    }))
    """
)


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def run(*args: str, **changes: str) -> subprocess.CompletedProcess:
    # The browser tests' conftest, collected in the same run, allows async-unsafe calls: a
    # production process never has that switch.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {**inherited, **PRODUCTION, "DATABASE_URL": database_url(), **changes}
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(**changes: str) -> subprocess.CompletedProcess:
    return run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **changes)


@pytest.mark.django_db
def test_it_passes_check_deploy_with_production_settings():
    result = check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "check_id"),
    [
        ({"SITE_URL": "http://console.example.com"}, "security.W004"),  # no HSTS on http
        ({"SECURE_SSL_REDIRECT": "0"}, "security.W008"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SECURE_COOKIES": "0"}, "security.W012"),
        ({"DEBUG": "1"}, "security.W018"),
        ({"PROXY_DOMAIN": ""}, "pods.W001"),
        ({"PROXY_DOMAIN": "pods.example.com"}, "pods.W002"),  # a sibling of the console
        ({"PROXY_DOMAIN": "example.com"}, "pods.W002"),  # the console's parent
    ],
)
def test_it_fails_check_deploy_when_a_production_setting_is_loosened(changes, check_id):
    result = check_deploy(**changes)
    assert result.returncode != 0
    assert check_id in result.stderr, result.stderr


@pytest.mark.django_db(transaction=True)
def test_production_pages_carry_hsts_the_csp_and_host_only_secure_cookies():
    result = run("-c", PROBE)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    policy = dict(part.strip().split(" ", 1) for part in seen["csp"].split(";"))
    assert policy["script-src"] == "'self' https://js.stripe.com"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["form-action"] == "'self' https://*.example-pods.net"
    assert "unsafe" not in policy["script-src"] and "unsafe" not in policy["style-src"]
    csrf = seen["cookies"]["__Host-csrftoken"]
    assert "Secure" in csrf and "Path=/" in csrf and "Domain" not in csrf
    assert seen["session_cookie"] == "__Host-sessionid"
    assert seen["plain"] == [301, "https://console.example.com/accounts/login/?next=/x"]
    assert seen["health"] == 200  # load balancers probe over plain HTTP


def policy_of(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.django_db
def test_console_pages_take_stripe_js_and_pod_hosts_from_the_current_settings(
    client, alice, team, settings
):
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"  # the emulator's Stripe.js stand-in
    settings.SITE_URL, settings.PROXY_DOMAIN = "http://localhost:8000", "localhost"
    client.force_login(alice)
    policy = policy_of(client.get(f"/t/{team.slug}/billing/top-up/"))
    assert policy["script-src"] == "'self' http://127.0.0.1:8420"
    assert policy["connect-src"] == "'self' http://127.0.0.1:8420"
    assert policy["form-action"] == "'self' http://*.localhost:8000"
    assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_only_the_terminal_page_allows_style_elements(client, alice, team):
    pod = stopped_pod(team, catalogue()["machine"])
    client.force_login(alice)
    terminal = policy_of(client.get(f"/t/{team.slug}/pods/{pod.public_id}/terminal/"))
    assert terminal["style-src"] == "'self' 'unsafe-inline'"
    detail = policy_of(client.get(f"/t/{team.slug}/pods/{pod.public_id}/"))
    assert detail["style-src"] == "'self'"

"""A Dev's hostile pod page opened by an Admin, in a real browser: the pod is served on its own
origin (http://<pod>-8080.localhost:<port>/, the console on http://localhost:<port>/), its
script cannot read the console's cookies or pages nor post a form to the console, its
Set-Cookie headers never reach the console's origin, and the page itself still works.

daphne serves the console and the proxy as under `make run` (PROXY_DOMAIN=localhost); the pod
runs on the process runtime, deployed eagerly from the test (tests/security/hostile_pod.py)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from console.celery import app as celery_app
from pods.models import GpuType, Pod
from pods.runtime import get_backend
from teams.models import ApiKey, AuditEvent, Membership, Role
from tests.e2e.test_pods import acme, database_url, free_port, signed_in, wait_for_port
from tests.security.hostile_pod import hostile_pod

__all__ = ["acme"]  # the pods browser test's team fixture: alice (Dev) in acme, with credit


@pytest.fixture
def console(tmp_path, transactional_db):
    """daphne on localhost:<port> with pods under *.localhost; yields the console's URL."""
    port = free_port()
    url = f"http://localhost:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DATA_DIR": str(tmp_path),
        "SECURE_COOKIES": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "SITE_URL": url,
        "PROXY_DOMAIN": "localhost",
    }
    log = open(tmp_path / "daphne.log", "wb")  # noqa: SIM115 - closed in teardown
    daphne = subprocess.Popen(
        [Path(sys.executable).parent / "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["console.asgi:application"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        yield url
    finally:
        daphne.terminate()
        daphne.wait(timeout=20)
        log.close()


@pytest.fixture
def attack(acme, console, settings, tmp_path, verified_user):
    """alice (Dev) deploys the hostile pod; ada, the team's Admin, is the one who opens it."""
    alice, team = acme
    admin = verified_user("ada@example.com")
    Membership.objects.create(user=admin, team=team, role=Role.ADMIN)
    settings.DATA_DIR = tmp_path
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        parts = {"a40": GpuType.objects.get(id="NVIDIA A40")}
        pod = hostile_pod(team, alice, parts, console=console)
    finally:
        celery_app.conf.task_always_eager = eager
    yield admin, team, pod
    for running in Pod.objects.exclude(runtime_handle={}):
        get_backend("process").stop(running.runtime_handle, grace_seconds=0.5)


def read_report(page) -> dict:
    report = page.locator("#report")
    expect(report).not_to_have_text("pending")
    return json.loads(report.inner_text())


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_hostile_pod_page_cannot_act_on_the_console(console, attack, new_page, shot):
    admin, team, pod = attack
    page = signed_in(new_page, admin, console)
    violations = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m))
    page.goto(f"{console}/t/{team.slug}/pods/{pod.public_id}/")
    pod_url = f"http://{pod.public_id}-8080.localhost:{console.rsplit(':', 1)[1]}"
    link = page.locator("[data-testid=proxy-url][data-port='8080'] [data-testid=open-port]")
    expect(link).to_have_attribute("href", pod_url + "/")
    session = {c["name"]: c["value"] for c in page.context.cookies(console)}
    assert settings.CSRF_COOKIE_NAME in session  # the pod page had forms: the token is there
    shot(page, "pod-page-on-the-console")

    keys = set(ApiKey.objects.values_list("pk", flat=True))  # the pod's own, automatic one
    events = AuditEvent.objects.count()
    posts = []
    page.context.on(
        "response",
        lambda r: (
            "/settings/api-keys/" in r.url and r.request.method == "POST" and posts.append(r.status)
        ),
    )
    with page.expect_popup() as popup:
        link.click()
    hostile = popup.value
    hostile.set_default_timeout(15_000)
    expect(hostile.locator("h1")).to_have_text("Hello from a hostile pod")
    expect(hostile).to_have_url(pod_url + "/")  # through the console's sign-in hand-off
    report = read_report(hostile)
    shot(hostile, "hostile-pod-page")

    assert report["script"] == "ran"  # the pod's own script runs on its own origin
    assert json.loads(report["own_origin"]) == {"own": True}
    assert settings.SESSION_COOKIE_NAME not in report["cookies"]
    assert settings.CSRF_COOKIE_NAME not in report["cookies"]
    assert report["team_page"].startswith("blocked"), report["team_page"]
    wait_for(lambda: len(posts) >= 2)  # the fetch and the form both reached the console...
    assert posts == [403, 403]  # ...which refused them (CSRF: a foreign Origin, no token)
    assert set(ApiKey.objects.values_list("pk", flat=True)) == keys
    assert not ApiKey.objects.filter(name__startswith="stolen").exists()
    # The only thing the console wrote meanwhile: ada's sign-in to the pod's host.
    new_events = AuditEvent.objects.order_by("id")[events:]
    assert [e.action for e in new_events] == ["pod.proxy_signed_in"]
    assert violations == []


# The hostile pod page's refused fetches and frames log errors on the pod's origin.
@pytest.mark.console_errors_expected
def test_a_pods_cookies_never_reach_the_consoles_origin(console, attack, new_page, shot):
    admin, team, pod = attack
    page = signed_in(new_page, admin, console)
    before = {c["name"]: c["value"] for c in page.context.cookies(console)}
    pod_url = f"http://{pod.public_id}-8080.localhost:{console.rsplit(':', 1)[1]}"
    page.goto(pod_url + "/echo")  # signs in through the console, then echoes what it got
    expect(page).to_have_url(pod_url + "/echo")
    assert json.loads(page.locator("body").inner_text())["cookie"] == ""  # no console cookie

    page.goto(pod_url + "/set-cookies?domain=localhost")
    page.goto(pod_url + "/")
    read_report(page)  # the page's script also tried document.cookie with domain=localhost
    on_pod = {c["name"]: c for c in page.context.cookies(pod_url)}
    assert {"pod_plain", "pod_domain", "pod_upper", "sessionid"} <= set(on_pod)
    for name in ("pod_plain", "pod_domain", "pod_upper", "sessionid"):
        assert on_pod[name]["domain"] == f"{pod.public_id}-8080.localhost"  # host-only
    assert on_pod["console_proxy"]["value"] != "forged"
    assert on_pod["console_proxy"]["httpOnly"] is True

    after = {c["name"]: c["value"] for c in page.context.cookies(console)}
    header_cookies = {"pod_plain", "pod_domain", "pod_upper", "csrftoken", "console_proxy"}
    assert not header_cookies & (set(after) - set(before))
    # Nor did the script's document.cookie with domain=localhost: Chromium takes "localhost"
    # for a public suffix and refuses cookies for it from x.localhost.
    assert "tossed_by_script" not in after
    assert "tossed_by_script" not in on_pod
    assert after[settings.SESSION_COOKIE_NAME] == before[settings.SESSION_COOKIE_NAME]
    page.goto(f"{console}/t/{team.slug}/team/")
    expect(page.locator("[data-testid=user-menu]")).to_contain_text(admin.email)
    shot(page, "console-still-signed-in")

"""A pod's whole life in the browser: deploy through the wizard, watch it start without a
reload, read its server's output in the log panel, stop, start and terminate it.

The pages are served by daphne (websockets need ASGI) and the lifecycle runs in a real Celery
worker; both are subprocesses on the test database, sharing a Redis database of their own for
the broker and the channel layer, so status changes really travel worker -> Redis -> browser.
"""

import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from billing.services import adjust_balance
from pods import seed
from pods.models import Pod, PodTemplate
from pods.runtime import get_backend
from teams.models import Membership, Role, Team

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def console(tmp_path, transactional_db):
    """daphne + a Celery worker (solo pool) on the test database; yields the base URL."""
    redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/11"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis,
        "CELERY_BROKER_URL": redis,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DATA_DIR": str(tmp_path),
        "SECURE_COOKIES": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "SITE_URL": f"http://127.0.0.1:{port}",
    }
    subprocess.run(["redis-cli", "-u", redis, "flushdb"], capture_output=True, check=False)
    log = open(tmp_path / "servers.log", "wb")  # noqa: SIM115 - closed in teardown
    bin_dir = Path(sys.executable).parent
    daphne = subprocess.Popen(
        [bin_dir / "daphne", "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [bin_dir / "celery", "-A", "console", "worker", "--pool=solo", "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in (daphne, worker):
            process.terminate()
        for process in (daphne, worker):
            process.wait(timeout=20)
        settings_data = settings.DATA_DIR
        settings.DATA_DIR = tmp_path
        for pod in Pod.objects.exclude(runtime_handle={}):
            get_backend("process").stop(pod.runtime_handle, grace_seconds=0.5)
        settings.DATA_DIR = settings_data
        log.close()


@pytest.fixture
def acme(verified_user):
    alice = verified_user("alice@example.com")
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=alice, team=team, role=Role.DEV)
    adjust_balance(team=team, amount=Decimal("25"), reason="e2e", actor=None, key="e2e-credit")
    seed.run(open(os.devnull, "w"))  # noqa: SIM115
    return alice, team


def signed_in(new_page, user, base: str):
    client = Client()
    client.force_login(user)
    page = new_page()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}])
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def status_badge(page):
    return page.locator("#pod-status [data-testid=pod-status]").first


def test_it_deploys_watches_stops_starts_and_terminates_a_pod(console, acme, new_page, shot):
    alice, team = acme
    page = signed_in(new_page, alice, console)
    template = PodTemplate.objects.get(name="HTTP demo", team=None)
    page.goto(f"{console}/t/{team.slug}/pods/deploy/?template={template.public_id}")
    expect(page.locator("#id_image")).to_have_value("python:3.11-slim")
    a6000 = page.locator("label[data-gpu='NVIDIA RTX A6000']")
    expect(a6000).to_have_class("card gpu-card h-100 gpu-card-unavailable")  # Secure: none
    page.select_option("#id_cloud_type", "COMMUNITY")
    expect(a6000).to_have_attribute("data-free", "2")
    a6000.click()
    expect(page.locator("[data-testid=review-total]")).to_be_visible()
    page.fill("#id_name", "browser demo")
    page.locator("#id_name").blur()
    shot(page, "wizard-review")
    page.click("[data-testid=deploy]")
    page.wait_for_url("**/pods/*/")
    page.evaluate("window.__noReload = true")
    shot(page, "deployed")

    expect(status_badge(page)).to_have_attribute("data-status", "running", timeout=30_000)
    assert page.evaluate("window.__noReload") is True  # it turned running without a reload
    expect(page.locator("#log-live")).to_have_text("live")
    expect(page.locator("[data-testid=log-panel]")).to_contain_text(
        "HTTP demo listening on port", timeout=15_000
    )
    port = page.locator("[data-testid=port] a").first
    demo = page.context.new_page()  # the proxy link: team only, signed in through the console
    demo.goto(port.get_attribute("href"))
    expect(demo.locator("h1")).to_contain_text("Hello from pod")
    expect(page.locator("[data-testid=log-panel]")).to_contain_text('"GET / HTTP/1.1" 200')
    shot(page, "running-with-logs")

    page.click("#pod-status [data-testid=stop]")
    page.evaluate("window.__noReload = true")
    expect(status_badge(page)).to_have_attribute("data-status", "exited", timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    shot(page, "stopped")

    page.click("#pod-status [data-testid=start]")
    expect(status_badge(page)).to_have_attribute("data-status", "running", timeout=30_000)
    shot(page, "started-again")

    page.click("#pod-status [data-testid=terminate]")
    page.wait_for_url(f"**/t/{team.slug}/pods/")
    expect(page.locator("[data-pod]")).to_have_count(0, timeout=30_000)
    shot(page, "terminated")
    pod = Pod.objects.get(name="browser demo")
    assert pod.status == Pod.Status.TERMINATED

"""The web terminal in a browser: open it from a running pod's Connect panel, type a command,
read its output, reconnect; and open the pod's HTTP port through the console's proxy.

daphne and a Celery worker serve the console as in test_pods.py; the pod is deployed eagerly
from the test (same DATA_DIR as daphne), so the test spends its time in the browser."""

import re

import pytest
from playwright.sync_api import expect

from console.celery import app as celery_app
from pods import services
from pods.models import CloudType, GpuType, Pod
from pods.seed import HTTP_DEMO_COMMAND
from pods.services import DeployRequest
from teams.models import AuditEvent
from tests.e2e import test_pods as pods_browser

# The fixtures of the pods browser test: its team and the daphne + Celery worker console.
acme = pods_browser.acme
console = pods_browser.console
signed_in = pods_browser.signed_in

OUTPUT = "hello-from-the-browser"


@pytest.fixture
def running_pod(acme, console, settings, tmp_path):
    alice, team = acme
    settings.DATA_DIR = tmp_path  # the console fixture gave daphne this DATA_DIR
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        request = DeployRequest(
            name="terminal demo",
            cloud_type=CloudType.SECURE,
            image="python:3.11-slim",
            container_disk_gb=5,
            volume_gb=1,
            gpu_type=GpuType.objects.get(id="NVIDIA A40"),
            gpu_count=1,
            start_command=HTTP_DEMO_COMMAND,
            env=[{"key": "DEMO_DATA", "value": "/workspace"}],
            ports=[{"port": 8080, "protocol": "http"}],
        )
        pod = services.deploy_pod(actor=alice, team=team, request=request)
    finally:
        celery_app.conf.task_always_eager = eager
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    return pod


def test_it_types_a_command_in_the_web_terminal(console, acme, running_pod, new_page, shot):
    alice, team = acme
    page = signed_in(new_page, alice, console)
    page.goto(f"{console}/t/{team.slug}/pods/{running_pod.public_id}/")
    expect(page.locator("[data-testid=connect-panel]")).to_contain_text("8080")
    shot(page, "connect-panel")

    with page.expect_popup() as popup:
        page.click("[data-testid=open-terminal]")
    terminal = popup.value
    terminal.set_default_timeout(15_000)
    expect(terminal.locator("[data-testid=terminal-state]")).to_have_text("connected")
    rows = terminal.locator("#terminal .xterm-rows")
    # Typed before the shell's prompt, keys interleave with it under load ("e# cho ...").
    expect(rows).to_contain_text("#")
    terminal.locator("#terminal").click()
    terminal.keyboard.type(f"echo {OUTPUT} && hostname\n")
    expect(rows).to_contain_text(f"echo {OUTPUT}")
    expect(rows).to_contain_text(running_pod.public_id)  # hostname ran in the pod
    assert rows.inner_text().count(OUTPUT) >= 2  # what was typed, and what echo printed
    shot(terminal, "terminal")

    terminal.keyboard.type("exit\n")
    expect(terminal.locator("[data-testid=terminal-state]")).to_have_text("disconnected")
    expect(rows).to_contain_text("The shell exited.")
    terminal.click("[data-testid=terminal-reconnect]")
    expect(terminal.locator("[data-testid=terminal-state]")).to_have_text("connected")
    terminal.locator("#terminal").click()
    terminal.keyboard.type("echo again-$((6*7))\n")
    expect(rows).to_contain_text("again-42")
    shot(terminal, "reconnected")
    actions = AuditEvent.objects.filter(resource_id=running_pod.public_id)
    assert actions.filter(action="pod.terminal_opened").count() == 2


def test_it_opens_the_pods_http_port_through_the_proxy(console, acme, running_pod, new_page, shot):
    alice, team = acme
    page = signed_in(new_page, alice, console)
    page.goto(f"{console}/t/{team.slug}/pods/{running_pod.public_id}/")
    link = page.locator("[data-testid=proxy-url][data-port='8080'] [data-testid=open-port]")
    # The pod's own origin under localhost, on the console's port (PROXY_DOMAIN's default).
    pod_url = f"http://{running_pod.public_id}-8080.localhost:{console.rsplit(':', 1)[1]}/"
    expect(link).to_have_attribute("href", pod_url)
    with page.expect_popup() as popup:
        link.click()
    demo = popup.value
    expect(demo.locator("h1")).to_contain_text(f"Hello from pod {running_pod.public_id}")
    expect(demo).to_have_url(pod_url)  # signed in there through the console's hand-off
    shot(demo, "through-the-proxy")

    stranger = new_page()
    stranger.goto(pod_url)
    login = f"{console}/accounts/login/?next=/proxy-auth/{running_pod.public_id}-8080/"
    expect(stranger).to_have_url(re.compile(re.escape(login)))
    stranger.goto(f"{console}/proxy/{running_pod.public_id}-8080/")
    expect(stranger).to_have_url(
        f"{console}/accounts/login/?next=/proxy/{running_pod.public_id}-8080/"
    )
    shot(stranger, "team-only-asks-to-sign-in")

"""The pods table and the pod page in Chromium at 1440 × 900: a 100-character name ends in an
ellipsis (the full name on hover) and leaves the Actions column inside the viewport; the pod
page says its GPUs are simulated and links its HTTP port through the proxy; a port that does not
answer shows the reason and the pod's log instead of a bare 502. No console errors anywhere.

daphne serves the console and the proxy (PROXY_DOMAIN=localhost, as under `make run`); the pods
run on the process runtime, deployed eagerly from the test."""

import pytest
from playwright.sync_api import expect

from console.celery import app as celery_app
from pods import services
from pods.models import CloudType, GpuType, Pod
from pods.runtime import get_backend
from pods.seed import HTTP_DEMO_COMMAND
from pods.services import DeployRequest
from tests.e2e.test_pod_origin import console
from tests.e2e.test_pods import acme, signed_in

__all__ = ["acme", "console"]

VIEWPORT = {"width": 1440, "height": 900}
LONG_NAME = "training-run-with-a-very-descriptive-name-" + "x" * 58  # 100 characters


def deploy(team, user, **overrides) -> Pod:
    values = dict(
        name=LONG_NAME,
        cloud_type=CloudType.SECURE,
        image="python:3.11-slim",
        container_disk_gb=5,
        volume_gb=1,
        gpu_type=GpuType.objects.get(id="NVIDIA A40"),
        gpu_count=1,
        start_command=HTTP_DEMO_COMMAND,
        ports=[{"port": 8080, "protocol": "http"}, {"port": 2222, "protocol": "tcp"}],
    )
    values.update(overrides)
    pod = services.deploy_pod(actor=user, team=team, request=DeployRequest(**values))
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    return pod


@pytest.fixture
def pods(acme, console, settings, tmp_path):
    """A running pod with a 100-character name, and one whose port nothing listens on."""
    alice, team = acme
    settings.DATA_DIR = tmp_path  # daphne's DATA_DIR (the console fixture)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        long = deploy(team, alice)
        quiet = deploy(
            team,
            alice,
            name="quiet",
            start_command="echo 'Installing <b>weights</b>...'; exec sleep 600",
            ports=[{"port": 8080, "protocol": "http"}],
        )
    finally:
        celery_app.conf.task_always_eager = eager
    yield alice, team, long, quiet
    for pod in Pod.objects.exclude(runtime_handle={}):
        get_backend("process").stop(pod.runtime_handle, grace_seconds=0.5)


# Where the pods table's parts end up, once the row is in the page with its styles.
LAYOUT = """id => {
  const row = document.querySelector(`tr[data-pod='${id}']`);
  const name = row && row.querySelector("[data-testid=pod-name]");
  const stop = row && row.querySelector("[data-testid=terminate]");
  const head = document.querySelector("[data-testid=actions-header]");
  if (!name || !stop || !head || !getComputedStyle(name).textOverflow) return null;
  const right = e => e.getBoundingClientRect().right;
  return {truncated: name.scrollWidth > name.clientWidth,
          ellipsis: getComputedStyle(name).textOverflow,
          actions_right: right(head), terminate_right: right(stop),
          page_width: document.documentElement.scrollWidth};
}"""


def watch_console(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    return errors


def assert_within_viewport(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"the page is {width} px wide"


def test_a_long_name_keeps_the_pods_table_and_the_pod_page_within_1440_px(
    console, pods, new_page, shot
):
    alice, team, long, _ = pods
    page = signed_in(new_page, alice, console)
    page.set_viewport_size(VIEWPORT)
    errors = watch_console(page)
    page.goto(f"{console}/t/{team.slug}/pods/")
    name = page.locator(f"tr[data-pod='{long.public_id}'] [data-testid=pod-name]")
    expect(name).to_have_attribute("title", LONG_NAME)
    # The live table may be swapped in meanwhile (htmx): measure in one go, once it settled.
    layout = page.wait_for_function(LAYOUT, arg=long.public_id).json_value()
    assert layout["truncated"] and layout["ellipsis"] == "ellipsis", layout
    assert layout["actions_right"] <= VIEWPORT["width"], layout
    assert layout["terminate_right"] <= VIEWPORT["width"], layout
    assert layout["page_width"] <= VIEWPORT["width"], layout
    name.hover()
    shot(page, "pods-table-long-name")

    page.goto(f"{console}/t/{team.slug}/pods/{long.public_id}/")
    crumb = page.locator("[data-testid=pod-crumb]")
    expect(crumb).to_have_attribute("title", LONG_NAME)
    assert crumb.evaluate("e => e.scrollWidth > e.clientWidth")
    assert_within_viewport(page)
    expect(page.locator("[data-testid=gpus-simulated]")).to_contain_text("nvidia-smi")
    port = f"{console.rsplit(':', 1)[1]}"
    link = page.locator("[data-testid=ports-card] [data-testid=port][data-port='8080'] a")
    expect(link).to_have_attribute("href", f"http://{long.public_id}-8080.localhost:{port}/")
    tcp = page.locator("[data-testid=ports-card] [data-testid=port][data-port='2222']")
    expect(tcp).to_contain_text("127.0.0.1:")
    expect(tcp).to_contain_text("from the machine itself only")
    shot(page, "pod-page-long-name")
    assert errors == []


def test_open_on_a_port_that_does_not_answer_shows_why_and_the_log(console, pods, new_page, shot):
    alice, team, _, quiet = pods
    page = signed_in(new_page, alice, console)
    page.set_viewport_size(VIEWPORT)
    errors = watch_console(page)
    page.goto(f"{console}/t/{team.slug}/pods/{quiet.public_id}/")
    open_port = page.locator("[data-testid=proxy-url][data-port='8080'] [data-testid=open-port]")
    expect(open_port).to_be_visible()
    with page.expect_popup(timeout=30_000) as popup:
        open_port.click()
    waiting = popup.value
    waiting.set_default_timeout(15_000)
    waiting.set_viewport_size(VIEWPORT)
    errors += watch_console(waiting)
    expect(waiting.locator("[data-testid=proxy-title]")).to_have_text("Still installing")
    expect(waiting.locator("[data-testid=proxy-reason]")).to_contain_text(
        "nothing listens on port 8080 yet"
    )
    log = waiting.locator("[data-testid=proxy-log]")
    expect(log).to_contain_text("Installing <b>weights</b>...")  # shown as text, not markup
    assert waiting.locator("[data-testid=proxy-log] b").count() == 0
    shot(waiting, "port-not-answering")
    with waiting.expect_navigation(timeout=15_000):  # it reloads itself while the pod is new
        pass
    expect(waiting.locator("[data-testid=proxy-title]")).to_have_text("Still installing")
    assert errors == []

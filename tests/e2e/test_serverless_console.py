"""The serverless console in Chromium: a Dev member creates an endpoint, sends a job from the
request tester, a real worker (the unmodified runpod SDK running `runpod.serverless.start`)
completes it, and the page shows the status and the pretty-printed, escaped output without a
reload, while the live part of the page (counts, recent jobs, requests per minute) catches up.
The page's curl and Python examples, copied as shown, run against it. A handler's exception and
invalid JSON get a clear error in place. No console errors.

daphne serves the console (the worker protocol's long-polls are served at the ASGI level)."""

import ast
import json
import os
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from serverless.models import Endpoint, Job
from teams.services import create_api_key
from tests.e2e.test_pod_origin import console
from tests.e2e.test_pods import acme, signed_in
from tests.serverless.factories import an_endpoint, serverless_template
from tests.serverless.live import WorkerProcess

__all__ = ["acme", "console"]

pytestmark = pytest.mark.django_db(transaction=True)

# The page's visibility as the browser reports it, switched the way a tab switch does.
HIDE = """Object.defineProperty(document, "hidden", {value: true, configurable: true});
document.dispatchEvent(new Event("visibilitychange"));"""
SHOW = """Object.defineProperty(document, "hidden", {value: false, configurable: true});
document.dispatchEvent(new Event("visibilitychange"));"""
COUNT_SENDS = """window.liveSends = 0;
document.body.addEventListener("htmx:beforeSend", (event) => {
  if (event.detail.requestConfig.path.includes("partial=live")) window.liveSends += 1;
});
document.body.addEventListener("htmx:afterSwap", () => {
  document.body.dataset.liveSwaps = Number(document.body.dataset.liveSwaps || 0) + 1;
});"""


def create_endpoint(page, console: str, team, template) -> Endpoint:
    """Through the form, which shows only the chosen compute's fields."""
    page.goto(f"{console}/t/{team.slug}/serverless/new/")
    expect(page.locator("#id_cpu_instance")).to_be_hidden()
    page.select_option("#id_compute", "cpu")
    expect(page.locator("#id_cpu_instance")).to_be_visible()
    expect(page.locator("#id_gpu_0")).to_be_hidden()
    page.select_option("#id_compute", "gpu")
    expect(page.locator("#id_gpu_0")).to_be_visible()
    page.fill("#id_name", "echo")
    page.select_option("#id_template", str(template.pk))
    page.select_option("#id_gpu_0", "NVIDIA A40")
    page.click("[data-testid=save-endpoint]")
    expect(page.locator("[data-testid=endpoint-id]")).to_be_visible()
    return Endpoint.objects.get(team=team)


def run_example(page, team, user, example: str, command: list[str]) -> str:
    """One of the page's examples, run as shown (curl, the real runpod SDK) with a new key."""
    _, secret = create_api_key(team=team, actor=user, name=example, permission="read_write")
    code = page.locator(f"#{example}").inner_text()
    env = {**os.environ, "RUNPOD_API_KEY": secret}
    done = subprocess.run([*command, code], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_tester_sends_a_job_that_a_real_worker_completes_in_place(
    console, acme, new_page, shot
):
    alice, team = acme
    page = signed_in(new_page, alice, console)
    endpoint = create_endpoint(page, console, team, serverless_template(team))
    worker = WorkerProcess(endpoint, console, "plain")
    try:
        expect(page.locator("[data-testid=rpm-empty]")).to_be_visible()  # not empty axes
        page.evaluate("window.notReloaded = true")
        page.fill("#id_input", '{"prompt": "<b>hi</b>"}')
        page.click("[data-testid=send-test-job]")
        result = page.locator("#tester-result")
        status = result.locator("[data-testid=job-status]")
        expect(status).to_have_text("COMPLETED", timeout=25_000)
        output = result.locator("[data-testid=job-output]")
        expect(output).to_contain_text('"prompt": "<b>hi</b>"')
        expect(output).to_contain_text(f'"worker": "{worker.worker.public_id}"')
        expect(output.locator("b")).to_have_count(0)  # shown as text, never as markup
        assert page.evaluate("window.notReloaded") is True
        live = page.locator("#endpoint-live")
        expect(live.locator("[data-count=completed] .fs-4")).to_have_text("1", timeout=10_000)
        expect(live.locator("[data-testid=job-table] [data-testid=job-status]")).to_have_text(
            "COMPLETED"
        )
        expect(live.locator(f"[data-worker='{worker.worker.public_id}']")).to_be_visible()
        expect(page.locator("#endpoint-rpm-chart")).to_have_attribute("data-total", "1")
        expect(page.locator("[data-testid=rpm-empty]")).to_be_hidden()
        shot(page, "completed")

        output = run_example(page, team, alice, "sdk-example", [sys.executable, "-c"])
        assert ast.literal_eval(output)["echo"] == {"prompt": "Hello"}
        answer = json.loads(run_example(page, team, alice, "curl-example", ["bash", "-c"]))
        assert answer["status"] == "COMPLETED" and answer["output"]["echo"] == {"prompt": "Hello"}

        page.fill("#id_input", '{"raise": "<i>bad</i> prompt"}')  # the handler raises
        page.click("[data-testid=send-test-job]")
        failed = result.locator("[data-testid=job-live]")
        expect(failed.locator("[data-testid=job-status]")).to_have_text("FAILED", timeout=25_000)
        expect(failed.locator("[data-testid=job-error]")).to_have_text(
            "ValueError: asked to fail: <i>bad</i> prompt"
        )
        expect(failed.locator("[data-testid=job-traceback]")).to_contain_text("Traceback")
        expect(failed.locator("i")).to_have_count(0)
        shot(page, "handler error")

        page.fill("#id_input", "{nope")
        page.click("[data-testid=send-test-job]")
        expect(result.locator("[data-testid=tester-error]")).to_contain_text("Not valid JSON")
        assert endpoint.jobs.count() == 4 and page.evaluate("window.notReloaded") is True
    finally:
        worker.close()


def test_the_live_part_pauses_while_the_tab_is_hidden(live_url, login_page, verified_user):
    """Playwright's clock drives htmx's 3 s poll; the page counts the requests htmx sends
    (htmx:beforeSend fires in the timer's own turn, so the count is exact when run_for ends)
    and the swaps (a poll's answer arrives in real time: wait for it before moving the clock)."""
    user = verified_user("dana@example.com")
    endpoint = an_endpoint(user.memberships.get().team)
    page = login_page(user)
    page.clock.install()
    page.goto(live_url(endpoint.get_absolute_url()))
    page.evaluate(COUNT_SENDS)
    sent = lambda: page.evaluate("window.liveSends")  # noqa: E731
    page.clock.run_for(3_500)
    assert sent() == 1
    expect(page.locator("body")).to_have_attribute("data-live-swaps", "1")
    page.evaluate(HIDE)
    page.clock.run_for(10_000)
    assert sent() == 1  # three periods hidden: nothing sent
    page.evaluate(SHOW)
    assert sent() == 2  # at once, without waiting for the next period
    expect(page.locator("body")).to_have_attribute("data-live-swaps", "2")


def test_the_endpoint_page_fits_a_phone_with_long_jobs(live_url, login_page, verified_user):
    """At 390 px every card stays within the screen (wide tables scroll inside theirs) and a
    job with a long input and a handler's error takes one line of the recent jobs."""
    user = verified_user("dana@example.com")
    endpoint = an_endpoint(user.memberships.get().team)
    error = '{"error_type": "ValueError", "error_message": "bad prompt", "error_traceback": "..."}'
    Job.objects.create(
        endpoint=endpoint, status="FAILED", input={"prompt": "a cat " * 60}, error=error,
        execution_timeout=600,
    )  # fmt: skip
    page = login_page(user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_url(endpoint.get_absolute_url()))
    row = page.locator("[data-testid=job-table] tbody tr")
    expect(row.locator("[data-testid=error-preview]")).to_have_text("ValueError: bad prompt")
    assert row.bounding_box()["height"] < 60
    widths = page.eval_on_selector_all(
        ".console-main .card", "cards => cards.map(card => card.getBoundingClientRect().right)"
    )
    assert widths and max(widths) <= 390

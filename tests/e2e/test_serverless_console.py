"""The serverless console in Chromium: a Dev member creates an endpoint, sends a job from the
request tester, a real worker (the unmodified runpod SDK running `runpod.serverless.start`)
completes it, and the page shows the status and the pretty-printed, escaped output without a
reload, while the live part of the page (counts, recent jobs, requests per minute) catches up.
Invalid JSON gets a clear error in place. No console errors.

daphne serves the console (the worker protocol's long-polls are served at the ASGI level)."""

import pytest
from playwright.sync_api import expect

from serverless.models import Endpoint
from tests.e2e.test_pod_origin import console
from tests.e2e.test_pods import acme, signed_in
from tests.serverless.factories import serverless_template
from tests.serverless.live import WorkerProcess

__all__ = ["acme", "console"]

pytestmark = pytest.mark.django_db(transaction=True)


def create_endpoint(page, console: str, team, template) -> Endpoint:
    page.goto(f"{console}/t/{team.slug}/serverless/new/")
    page.fill("#id_name", "echo")
    page.select_option("#id_template", str(template.pk))
    page.select_option("#id_gpu_0", "NVIDIA A40")
    page.click("[data-testid=save-endpoint]")
    expect(page.locator("[data-testid=endpoint-id]")).to_be_visible()
    return Endpoint.objects.get(team=team)


def test_the_tester_sends_a_job_that_a_real_worker_completes_in_place(
    console, acme, new_page, shot
):
    alice, team = acme
    page = signed_in(new_page, alice, console)
    endpoint = create_endpoint(page, console, team, serverless_template(team))
    worker = WorkerProcess(endpoint, console, "plain")
    try:
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
        shot(page, "completed")

        page.fill("#id_input", "{nope")
        page.click("[data-testid=send-test-job]")
        expect(result.locator("[data-testid=tester-error]")).to_contain_text("Not valid JSON")
        assert endpoint.jobs.count() == 1 and page.evaluate("window.notReloaded") is True
    finally:
        worker.close()

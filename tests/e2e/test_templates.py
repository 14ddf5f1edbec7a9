"""The official Jupyter Lab template in a browser: the wizard offers it (and not the PyTorch
image, which only container machines run), the pod deploys on the process runtime, and "Open"
on port 8888 waits on the proxy's page (it reloads while Jupyter Lab installs into the volume)
until Jupyter Lab itself answers on the pod's own origin.

daphne and a Celery worker serve the console as in test_pods.py (PROXY_DOMAIN=localhost)."""

import pytest
from playwright.sync_api import expect

from pods.models import Pod, PodTemplate
from tests.e2e import test_pods as pods_browser

acme = pods_browser.acme
console = pods_browser.console
signed_in = pods_browser.signed_in

INSTALL_TIMEOUT_MS = 240_000  # pip install from PyPI inside the pod: ~20 s measured here


def watch_console(page, errors: list[str]) -> None:
    page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))


@pytest.mark.slow
def test_the_jupyter_template_deploys_and_opens_through_the_proxy(console, acme, new_page, shot):
    alice, team = acme
    jupyter = PodTemplate.objects.get(name="Jupyter Lab", team=None)
    pytorch = PodTemplate.objects.get(name="RunPod PyTorch 2.1", team=None)
    page = signed_in(new_page, alice, console)
    errors: list[str] = []
    watch_console(page, errors)
    page.goto(f"{console}/t/{team.slug}/pods/deploy/?template={jupyter.public_id}")
    options = page.locator("#id_template option")
    expect(options.filter(has_text="Jupyter Lab")).to_have_count(1)
    expect(options.filter(has_text="PyTorch")).to_have_count(0)  # no container machine here
    assert pytorch.public_id not in page.content()
    page.locator("label[data-gpu='NVIDIA A40']").click()
    expect(page.locator("[data-testid=review-total]")).to_be_visible()
    shot(page, "wizard-jupyter")
    page.click("[data-testid=deploy]")
    page.wait_for_url("**/pods/*/")
    pod = Pod.objects.get(template=jupyter)
    status = page.locator("#pod-status [data-testid=pod-status]").first
    expect(status).to_have_attribute("data-status", "running", timeout=30_000)
    expect(page.locator("[data-testid=ports-card]")).to_contain_text("Jupyter Lab")

    with page.expect_popup() as popup:
        page.click("[data-testid=proxy-url][data-port='8888'] [data-testid=open-port]")
    lab = popup.value
    lab.set_default_timeout(30_000)
    lab_errors: list[str] = []
    watch_console(lab, lab_errors)
    port = console.rsplit(":", 1)[1]
    expect(lab).to_have_url(f"http://{pod.public_id}-8888.localhost:{port}/")
    if lab.locator("[data-testid=proxy-error]").count():  # still installing: it reloads
        expect(lab.locator("[data-testid=proxy-log]")).to_contain_text("Installing Jupyter Lab")
        shot(lab, "jupyter-installing")
    expect(lab).to_have_title("JupyterLab", timeout=INSTALL_TIMEOUT_MS)
    expect(lab.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    shot(lab, "jupyter-lab")
    assert errors == []
    # The waiting page is a 502 until Jupyter answers: Chromium logs each load of it.
    waiting = "the server responded with a status of 502"
    assert [e for e in lab_errors if waiting not in e] == [], sorted(set(lab_errors))

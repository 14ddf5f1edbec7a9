"""The deploy wizard in Chromium: a template applied, a row removed, then every field filled
back to back with no pause (and a paste) while the server's answers to the changes before
each one are held back until it was typed (SlowAnswers: the form that re-rendered itself lost
the GPU chosen and the values typed this way), then Deploy: the pod has every value typed.
A network volume in one data centre greys out, with the reason, the GPUs that are not there,
before Deploy. No console errors.

The pages come from pytest-django's live server; the deploy's boot task goes to the Celery
broker (REDIS_URL) and is purged afterwards: these tests check what the wizard sends, the pod
tests (test_pods.py) what a running pod does."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from billing.services import adjust_balance
from console.celery import app as celery_app
from pods.models import CloudType, Machine, NetworkVolume, Pod, PodTemplate
from teams.models import Membership, Role, Team
from tests.pods.factories import catalogue

pytestmark = pytest.mark.django_db(transaction=True)

POD_PAGE = re.compile(r"/pods/(?!deploy/)[a-z0-9]+/$")
START_COMMAND = "python3 -m http.server 8080 --bind 0.0.0.0 # pasted"


class SlowAnswers:
    """Holds the server's answers to the wizard's changes (never a page load or a Deploy) until
    the test delivers them: the worst case for a form that re-renders its inputs, where every
    answer lands after the next value was typed. The answers are the server's own."""

    def __init__(self, page) -> None:
        self.page, self.routes = page, []
        page.route("**/pods/deploy/", self.hold)

    def hold(self, route) -> None:
        body = route.request.post_data or ""
        if route.request.method != "POST" or "action=deploy" in body:
            route.continue_()
        else:
            self.routes.append(route)

    def held(self) -> list:
        return list(self.routes)

    def deliver(self, routes: list) -> None:
        for route in [r for r in routes if r in self.routes]:
            self.routes.remove(route)
            route.fulfill(response=route.fetch())

    def drain(self) -> None:
        """Every answer, including those of the requests htmx queued behind them."""
        for _ in range(200):
            self.deliver(self.held())
            busy = self.page.evaluate("document.querySelector('#wizard.htmx-request') !== null")
            if not busy and not self.routes:
                return
            self.page.wait_for_timeout(10)
        raise AssertionError("the wizard kept asking")

    def deliver_until_navigated(self, url) -> None:
        """A Deploy queued behind a held answer is sent once that answer is delivered."""
        for _ in range(100):
            self.deliver(self.held())
            try:
                self.page.wait_for_url(url, timeout=100)
                return
            except PlaywrightTimeout:
                continue
        raise AssertionError("the Deploy never left the page")


@pytest.fixture
def acme(verified_user):
    dana = verified_user("dana@example.com")
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=dana, team=team, role=Role.ADMIN)
    adjust_balance(team=team, amount=Decimal("50"), reason="e2e", actor=None, key="e2e-credit")
    yield dana, team, catalogue()
    celery_app.control.purge()  # the boot tasks of the pods deployed here


# The pod page a deploy lands on opens its live socket, which the live server (WSGI) cannot
# answer; test_pods.py runs that page under daphne. Only this error is set aside.
NO_WEBSOCKETS = re.compile(r"\S+/pods/\w+/: WebSocket connection to 'ws://\S+' failed: .*")


@pytest.fixture
def wizard(acme, login_page, live_url, console_errors):
    """The wizard's page for dana."""
    dana, team, parts = acme
    page = login_page(dana)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_url(f"/t/{team.slug}/pods/deploy/"))
    yield page, team, parts
    page.close()  # the pod page retries its socket: no error may come after the filter
    console_errors[:] = [e for e in console_errors if not NO_WEBSOCKETS.fullmatch(e)]


def test_it_deploys_every_value_filled_in_back_to_back(wizard, shot):
    page, team, _ = wizard
    template = PodTemplate.objects.create(
        team=team,
        name="Preset",
        image="preset/image:1",
        env=[{"key": "A", "value": "1"}, {"key": "B", "value": "2"}],
        ports=[{"port": 7000, "protocol": "http"}],
    )
    page.reload()
    page.select_option("#id_template", template.public_id)  # fills the fields at once
    expect(page.locator("#id_image")).to_have_value("preset/image:1")
    expect(page.locator("#id_http_ports")).to_have_value("7000")
    page.click("button[name=action][value=remove_env_0]")  # B moves up to row 0
    expect(page.locator("#id_env_key_0")).to_have_value("B")
    answers = SlowAnswers(page)
    for step in (
        lambda: page.select_option("#id_cloud_type", "SECURE"),
        lambda: page.click("label[data-gpu='NVIDIA A40']"),
        lambda: page.fill("#id_image", "python:3.11-slim"),
        lambda: page.fill("#id_container_disk_gb", "37"),
        lambda: answers.drain() or page.select_option("#id_gpu_count", "2"),  # the A40's counts
        lambda: page.fill("#id_volume_gb", "64"),
        lambda: page.fill("#id_volume_mount_path", "/data"),
        lambda: page.click("#id_start_command"),
        lambda: page.keyboard.insert_text(START_COMMAND),  # a paste: one input event
        lambda: page.fill("#id_env_key_0", "MODEL"),
        lambda: page.fill("#id_env_value_0", "llama-3"),
        lambda: page.click("[data-testid=add-env]"),
        lambda: page.fill("#id_env_key_1", "TOKEN"),
        lambda: page.fill("#id_env_value_1", "s3 cr=t"),
        lambda: page.fill("#id_http_ports", "8080, 8888"),
        lambda: page.fill("#id_tcp_ports", "22"),
        lambda: page.fill("#id_name", "quick fill"),
    ):
        on_their_way = answers.held()
        step()  # a value typed while the answers to the changes before it are on their way
        answers.deliver(on_their_way)
    answers.drain()
    shot(page, "filled")
    page.click("[data-testid=deploy]")
    answers.deliver_until_navigated(POD_PAGE)
    shot(page, "deployed")

    pod = Pod.objects.get(team=team)
    assert pod.template == template
    assert (pod.name, pod.cloud_type, pod.gpu_type_id, pod.gpu_count) == (
        "quick fill",
        CloudType.SECURE,
        "NVIDIA A40",
        2,
    )
    assert (pod.image, pod.container_disk_gb, pod.volume_gb) == ("python:3.11-slim", 37, 64)
    assert (pod.volume_mount_path, pod.start_command) == ("/data", START_COMMAND)
    assert pod.env == [{"key": "MODEL", "value": "llama-3"}, {"key": "TOKEN", "value": "s3 cr=t"}]
    assert pod.ports == [
        {"port": 8080, "protocol": "http"},
        {"port": 8888, "protocol": "http"},
        {"port": 22, "protocol": "tcp"},
    ]


def test_a_network_volume_greys_out_gpus_not_in_its_data_centre_before_deploy(wizard, shot):
    page, team, parts = wizard
    volume = NetworkVolume.objects.create(
        team=team, name="far-data", size_gb=50, data_center=parts["other_dc"]
    )
    Machine.objects.create(
        name="tx-4090",
        data_center=parts["other_dc"],
        cloud_type=CloudType.SECURE,
        gpu_type=parts["rtx"],
        gpu_count=2,
        vcpu=16,
        memory_gb=64,
        disk_gb=1000,
    )
    page.reload()
    a40 = page.locator("label[data-gpu='NVIDIA A40']")
    rtx = page.locator("label[data-gpu='NVIDIA GeForce RTX 4090']")
    expect(a40).to_have_attribute("data-free", "4")
    expect(a40).not_to_have_class("card gpu-card h-100 gpu-card-unavailable")
    page.fill("#id_image", "python:3.11-slim")
    page.fill("#id_name", "next to its data")

    page.select_option("#id_network_volume", volume.public_id)
    expect(a40).to_have_class("card gpu-card h-100 gpu-card-unavailable")
    expect(a40.locator("[data-testid=gpu-reason]")).to_have_text(
        "Not in US-TX-3, where volume far-data is."
    )
    expect(page.locator("input[value='NVIDIA A40']")).to_be_disabled()
    expect(rtx).to_have_attribute("data-free", "2")
    expect(page.locator("#id_volume_gb")).to_be_disabled()  # the network volume replaces it
    expect(page.locator("#id_name")).to_have_value("next to its data")
    shot(page, "volume-in-us-tx-3")
    assert Pod.objects.count() == 0  # all of it before Deploy

    rtx.click()
    expect(page.locator("[data-testid=review-total]")).to_be_visible()
    page.click("[data-testid=deploy]")
    page.wait_for_url(POD_PAGE)
    pod = Pod.objects.get(team=team)
    assert (pod.machine.data_center_id, pod.network_volume, pod.name) == (
        "US-TX-3",
        volume,
        "next to its data",
    )

"""The deploy wizard in Chromium: every field filled back to back with no pause (and a paste)
while the server's answers to each change arrive, then Deploy: the pod has every value typed.
A network volume in one data centre greys out, with the reason, the GPUs that are not there,
before Deploy. No console errors.

The pages come from pytest-django's live server; the deploy's boot task goes to the Celery
broker (REDIS_URL) and is purged afterwards: these tests check what the wizard sends, the pod
tests (test_pods.py) what a running pod does."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.services import adjust_balance
from console.celery import app as celery_app
from pods.models import CloudType, Machine, NetworkVolume, Pod
from teams.models import Membership, Role, Team
from tests.pods.factories import catalogue

pytestmark = pytest.mark.django_db(transaction=True)

POD_PAGE = re.compile(r"/pods/(?!deploy/)[a-z0-9]+/$")
START_COMMAND = "python3 -m http.server 8080 --bind 0.0.0.0 # pasted"


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
    page.select_option("#id_cloud_type", "SECURE")
    page.click("label[data-gpu='NVIDIA A40']")
    page.fill("#id_image", "python:3.11-slim")
    page.fill("#id_container_disk_gb", "37")
    page.select_option("#id_gpu_count", "2")  # offered once the A40's counts arrived
    page.fill("#id_volume_gb", "64")
    page.fill("#id_volume_mount_path", "/data")
    page.click("#id_start_command")
    page.keyboard.insert_text(START_COMMAND)  # a paste: one input event, no keystrokes
    page.fill("#id_env_key_0", "MODEL")
    page.fill("#id_env_value_0", "llama-3")
    page.click("[data-testid=add-env]")
    page.fill("#id_env_key_1", "TOKEN")
    page.fill("#id_env_value_1", "s3 cr=t")
    page.fill("#id_http_ports", "8080, 8888")
    page.fill("#id_tcp_ports", "22")
    page.fill("#id_name", "quick fill")
    shot(page, "filled")
    page.click("[data-testid=deploy]")
    page.wait_for_url(POD_PAGE)
    shot(page, "deployed")

    pod = Pod.objects.get(team=team)
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

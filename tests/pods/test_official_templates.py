"""Official templates run where they are offered: each declares its runtimes, the wizard offers
it only when a listed machine has one of them, placement refuses other machines, and on the
process runtime each one's start command really serves its ports (Jupyter Lab included, pip
installed into the pod's volume from PyPI at its first start)."""

import time

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from console.asgi import application
from pods import seed, services
from pods.models import Machine, Pod, PodTemplate
from pods.runtime import get_backend
from pods.runtime.process import IDLE_COMMAND
from tests.conftest import login
from tests.pods.connect_helpers import Call, session_cookie
from tests.pods.factories import deploy_request, fund

pytestmark = pytest.mark.usefixtures("reap")


@pytest.fixture
def official(db) -> dict[str, PodTemplate]:
    return {t["name"]: PodTemplate.objects.create(team=None, **t) for t in seed.TEMPLATES}


def from_template(template: PodTemplate, gpu, **overrides):
    values = dict(
        name=template.name,
        image=template.image,
        container_disk_gb=template.container_disk_gb,
        volume_gb=template.volume_gb,
        start_command=template.start_command,
        env=template.env,
        ports=[{"port": p["port"], "protocol": p["protocol"]} for p in template.ports],
        template=template,
    )
    values.update(overrides)
    return deploy_request(gpu, **values)


def test_every_official_template_declares_runtimes_and_never_idles_on_the_process_runtime():
    for template in seed.TEMPLATES:
        assert template["runtimes"], template["name"]
        if "process" in template["runtimes"]:
            # The process runtime ignores the image: only the command can serve the ports.
            assert template["start_command"].strip(), template["name"]
        for port in template["ports"]:
            assert port.get("label"), (template["name"], port)


def test_the_wizard_offers_only_templates_a_listed_machine_can_run(team, alice, parts, official):
    client = login(alice)
    url = reverse("pod_deploy", args=[team.slug])
    html = client.get(url).content.decode()
    pytorch = official["RunPod PyTorch 2.1"]
    assert official["Jupyter Lab"].public_id in html
    assert official["HTTP demo"].public_id in html
    assert pytorch.public_id not in html  # every machine here runs "process"
    assert list(PodTemplate.objects.offered().filter(pk=pytorch.pk)) == []
    Machine.objects.filter(pk=parts["rtx_machine"].pk).update(runtime="docker")
    assert pytorch.public_id in client.get(url).content.decode()


def test_it_places_a_template_only_on_machines_whose_runtime_runs_it(team, alice, parts, official):
    fund(team)
    pytorch = official["RunPod PyTorch 2.1"]
    with pytest.raises(services.PodError) as refused:
        services.deploy_pod(actor=alice, team=team, request=from_template(pytorch, parts["a40"]))
    assert refused.value.field == "template"
    assert "runs on docker machines only" in str(refused.value)
    assert not Pod.objects.exists()


def test_the_wizard_counts_only_gpus_on_machines_that_run_the_chosen_template(
    team, alice, parts, official
):
    client = login(alice)
    url = reverse("pod_deploy", args=[team.slug])
    pytorch = official["RunPod PyTorch 2.1"].public_id
    jupyter = official["Jupyter Lab"].public_id

    def free(template: str) -> dict:
        cards = client.get(url, {"template": template}).context["cards"]
        return {c["gpu"].id: c["free"] for c in cards}

    assert free(jupyter)["NVIDIA A40"] == 4
    assert free(pytorch)["NVIDIA A40"] == 0  # the A40 machine runs "process" only
    Machine.objects.filter(pk=parts["machine"].pk).update(runtime="docker")
    assert free(pytorch)["NVIDIA A40"] == 4


def proxied(pod: Pod, port: int, path: str, user) -> tuple[int, bytes]:
    headers = [(b"cookie", session_cookie(user))]
    call = Call(method="GET", path=f"/proxy/{pod.public_id}-{port}{path}", headers=headers)
    reply = async_to_sync(call.run)(application)
    return reply.status, reply.body


def wait_for_answer(pod: Pod, port: int, path: str, user, seconds: float) -> tuple[int, bytes]:
    deadline = time.monotonic() + seconds
    status, body = proxied(pod, port, path, user)
    while status in (502, 503) and time.monotonic() < deadline:
        time.sleep(1)
        status, body = proxied(pod, port, path, user)
    return status, body


def pod_log(pod: Pod) -> str:
    return get_backend("process").read_logs({"pod_id": pod.public_id}).text


@pytest.mark.django_db(transaction=True)
def test_the_http_demo_template_answers_through_the_proxy(team, alice, parts, official):
    fund(team)
    request = from_template(official["HTTP demo"], parts["a40"])
    pod = services.deploy_pod(actor=alice, team=team, request=request)
    pod.refresh_from_db()
    status, body = wait_for_answer(pod, 8080, "/", alice, seconds=20)
    assert status == 200 and f"Hello from pod {pod.public_id}".encode() in body
    assert IDLE_COMMAND not in pod_log(pod)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_jupyter_template_installs_jupyter_lab_and_answers_through_the_proxy(
    team, alice, parts, official
):
    fund(team)
    request = from_template(official["Jupyter Lab"], parts["a40"])
    pod = services.deploy_pod(actor=alice, team=team, request=request)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    # pip install from PyPI inside the pod: ~15 s on the host's own network, bounded at 4 min.
    status, body = wait_for_answer(pod, 8888, "/api", alice, seconds=240)
    log = pod_log(pod)
    assert status == 200, log[-2000:]
    assert b'"version"' in body  # Jupyter Server's /api answers with its version
    status, body = proxied(pod, 8888, "/lab", alice)
    assert status == 200 and b"JupyterLab" in body
    assert "Installing Jupyter Lab" in log and IDLE_COMMAND not in log


def test_the_templates_page_says_where_a_template_runs_instead_of_offering_a_deploy(
    team, alice, parts, official
):
    html = login(alice).get(reverse("template_list", args=[team.slug])).content.decode()
    assert html.count('data-testid="not-offered"') == 1
    assert "Runs on docker machines; none is listed here." in html
    assert f"?template={official['RunPod PyTorch 2.1'].public_id}" not in html
    assert f"?template={official['Jupyter Lab'].public_id}" in html

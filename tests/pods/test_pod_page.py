"""The pod page and the pods list tell the truth: simulated GPUs said plainly, proxy links for
HTTP ports and host:port for TCP ones, port labels only from the template, network volume usage,
honest empty and terminated states, long names truncated with the full text on hover, and a
bounded number of queries."""

import html as html_lib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pods import services
from pods.connect.proxy import host_url, path_url
from pods.models import Machine, NetworkVolume, Pod, PodTemplate
from tests.conftest import login
from tests.pods.connect_helpers import echo_pod
from tests.pods.factories import deploy_request, fund, stopped_pod
from tests.waiting import wait_for

pytestmark = pytest.mark.usefixtures("reap")

LONG_NAME = "a-very-long-pod-name-" + "x" * 79  # 100 characters


def page(client, pod: Pod) -> str:
    response = client.get(reverse("pod_detail", args=[pod.team.slug, pod.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_it_says_plainly_that_gpus_are_simulated_on_a_machine_without_gpu_devices(
    team, alice, parts
):
    client = login(alice)
    gpu_pod = stopped_pod(team, parts["machine"])
    assert 'data-testid="gpus-simulated"' in page(client, gpu_pod)
    assert "<code>nvidia-smi</code> and CUDA are not available" in page(client, gpu_pod)
    cpu_pod = stopped_pod(
        team, parts["cpu_machine"], gpu_type=None, gpu_count=0, cpu_instance=parts["cpu"]
    )
    assert 'data-testid="gpus-simulated"' not in page(client, cpu_pod)
    Machine.objects.filter(pk=parts["machine"].pk).update(runtime="docker")
    assert 'data-testid="gpus-simulated"' not in page(client, gpu_pod)  # real device requests


def test_it_labels_a_port_only_when_the_template_declared_it(team, alice, parts):
    client = login(alice)
    ports = [{"port": 8888, "protocol": "http"}]
    plain = stopped_pod(team, parts["machine"], ports=ports)
    assert "Jupyter" not in page(client, plain)
    template = PodTemplate.objects.create(
        name="Notebook",
        image="python:3.11-slim",
        ports=[{"port": 8888, "protocol": "http", "label": "Notebook server"}],
    )
    labelled = stopped_pod(team, parts["machine"], ports=ports, template=template)
    assert page(client, labelled).count('data-testid="port-label">Notebook server<') == 2


@pytest.mark.django_db(transaction=True)
def test_it_shows_proxy_links_for_http_ports_and_host_port_for_tcp_ports(team, alice, parts):
    pod = echo_pod(team, alice, parts)
    html = page(login(alice), pod)
    card = html[html.index('data-testid="ports-card"') : html.index('data-testid="connect-panel"')]
    http = next(m for m in pod.port_mappings if m["private"] == 8080)
    ssh = next(m for m in pod.port_mappings if m["private"] == 22)
    link = host_url(pod.public_id, 8080) or path_url(pod.public_id, 8080)  # what Connect opens
    assert f'href="{link}"' in card
    assert f":{http['public']}" not in card  # never the raw forward on the console host
    assert f'data-testid="tcp-address">127.0.0.1:{ssh["public"]}<' in card
    assert "from the machine itself only" in card  # the process runtime forwards on loopback


@pytest.mark.django_db(transaction=True)
def test_it_measures_a_network_volumes_usage_against_its_size(team, alice, parts):
    fund(team)
    volume = NetworkVolume.objects.create(
        team=team, name="datasets", size_gb=50, data_center=parts["dc"]
    )
    command = "head -c 3000000 /dev/zero > /workspace/blob && echo written && exec sleep 600"
    request = deploy_request(
        parts["a40"], start_command=command, network_volume=volume, volume_gb=0
    )
    pod = services.deploy_pod(actor=alice, team=team, request=request)
    pod.refresh_from_db()
    wait_for(lambda: "written" in page(login(alice), pod), timeout=15)
    html = page(login(alice), pod)
    used = html[html.index('data-testid="volume-used"') :][:300]
    assert "Network volume used" in used
    assert "2 MB" in used and "of 50 GB" in used


def test_it_tells_a_terminated_pod_from_a_stopped_one(team, alice, parts):
    client = login(alice)
    ports = [{"port": 8080, "protocol": "http"}]
    stopped = stopped_pod(team, parts["machine"], ports=ports)
    assert "Start the pod to connect to it." in page(client, stopped)
    gone = stopped_pod(team, parts["machine"], ports=ports, status=Pod.Status.TERMINATED)
    html = page(client, gone)
    assert "Start the pod to connect" not in html
    assert "This pod was terminated: there is nothing left to connect to." in html
    assert "The pod was terminated; its ports are closed." in html


def test_it_points_to_the_wizard_for_ports_not_to_templates(team, alice, parts):
    pod = stopped_pod(team, parts["machine"], ports=[])
    html = page(login(alice), pod)
    assert 'data-testid="no-ports"' in html
    assert f'href="/t/{team.slug}/pods/deploy/"' in html
    assert "in a template" not in html


def test_it_truncates_long_names_with_the_full_name_on_hover(team, alice, parts):
    client = login(alice)
    pod = stopped_pod(team, parts["machine"], name=LONG_NAME)
    assert len(pod.name) == 100
    html = page(client, pod)
    assert f'class="text-truncate name-crumb" title="{LONG_NAME}"' in html
    listing = client.get(reverse("pod_list", args=[team.slug])).content.decode()
    assert f'text-truncate name-cell" title="{LONG_NAME}"' in listing
    assert html_lib.escape(LONG_NAME) in listing


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_pods_list_runs_as_many_queries_for_eight_pods_as_for_two(team, alice, parts):
    client = login(alice)
    url = reverse("pod_list", args=[team.slug])
    template = PodTemplate.objects.create(name="t", image="i", ports=[])
    for _ in range(2):
        stopped_pod(team, parts["machine"], template=template)
    two = queries(client, url)
    for _ in range(6):
        stopped_pod(team, parts["machine"], template=template)
    assert queries(client, url) == two


def test_the_pod_page_runs_a_bounded_number_of_queries(team, alice, parts):
    client = login(alice)
    plain = stopped_pod(team, parts["machine"])
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    template = PodTemplate.objects.create(
        name="t", image="i", ports=[{"port": 8080, "protocol": "http", "label": "App"}]
    )
    full = stopped_pod(
        team,
        parts["machine"],
        template=template,
        network_volume=volume,
        volume_gb=0,
        ports=[{"port": 8080, "protocol": "http"}, {"port": 22, "protocol": "tcp"}],
    )
    for n in range(20):
        full.events.create(status=full.status, message=f"event {n}", actor=alice)
    count = queries(client, full.get_absolute_url())
    assert count == queries(client, plain.get_absolute_url())
    assert count <= 20, count

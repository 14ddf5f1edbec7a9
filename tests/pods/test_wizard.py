"""The deploy wizard: every field's bad input gets a message next to it and creates nothing;
good input deploys; a change re-renders only what depends on it (GPU grid, counts, review,
errors), never an input; GPUs that cannot be placed where the answers say are unavailable,
with the reason; the review shows the balance and runway to billing roles only."""

import html as html_lib
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pods.forms import TimerForm
from pods.models import CloudType, GpuType, Machine, NetworkVolume, Pod, PodTemplate
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import fund, stopped_pod

pytestmark = pytest.mark.usefixtures("reap")


@pytest.fixture
def client(alice, team, parts):
    fund(team)
    return login(alice)


@pytest.fixture
def url(team):
    return reverse("pod_deploy", args=[team.slug])


def valid(**changes) -> dict:
    data = {
        "action": "deploy",
        "compute": "gpu",
        "cloud_type": "SECURE",
        "gpu_type": "NVIDIA A40",
        "gpu_count": "1",
        "name": "wizard pod",
        "image": "python:3.11-slim",
        "container_disk_gb": "5",
        "volume_gb": "1",
        "volume_mount_path": "/workspace",
        "start_command": "exec sleep 600",
        "env_rows": "1",
        "env_key_0": "MODEL",
        "env_value_0": "llama",
        "http_ports": "8888",
        "tcp_ports": "22",
        "pricing": "on_demand",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def field_error(response, field: str) -> str:
    html = response.content.decode()
    found = re.findall(rf'data-error-for="{field}">([^<]*)<', html)
    assert found, f"no error next to {field}"
    return html_lib.unescape(found[0])


BAD_INPUTS = [
    ("gpu_type", {"gpu_type": None}, "Choose a GPU type"),
    ("gpu_type", {"gpu_type": "NVIDIA B200"}, "valid choice"),
    ("gpu_count", {"gpu_count": "5"}, "valid choice"),  # the largest A40 machine has 4
    ("gpu_count", {"gpu_count": "x"}, "valid choice"),
    ("cloud_type", {"cloud_type": "MOON"}, "valid choice"),
    ("data_center", {"data_center": "XX-1"}, "valid choice"),
    ("cpu_instance", {"compute": "cpu", "cpu_instance": None}, "Choose a CPU instance"),
    ("template", {"template": "nosuchtemplate"}, "valid choice"),
    ("name", {"name": "x" * 101}, "at most 100"),
    ("name", {"name": "bad\x07name"}, "control characters"),
    ("image", {"image": ""}, "required"),
    ("image", {"image": "Not An Image!"}, "Enter an image"),
    ("container_disk_gb", {"container_disk_gb": "0"}, "greater than or equal to 1"),
    ("container_disk_gb", {"container_disk_gb": "5000"}, "less than or equal to 1000"),
    ("container_disk_gb", {"container_disk_gb": "ten"}, "whole number"),
    ("volume_gb", {"volume_gb": "-1"}, "greater than or equal to 0"),
    ("volume_gb", {"volume_gb": "99999"}, "less than or equal to 4000"),
    ("volume_mount_path", {"volume_mount_path": "workspace"}, "absolute path"),
    ("volume_mount_path", {"volume_mount_path": "/"}, "absolute path"),
    ("volume_mount_path", {"volume_mount_path": "/data/../etc"}, "'..'"),
    ("volume_mount_path", {"volume_mount_path": "/usr/local/data"}, "part of the pod"),
    ("volume_mount_path", {"volume_mount_path": "/my data"}, "letters, digits"),
    ("network_volume", {"network_volume": "nosuchvolume"}, "valid choice"),
    ("start_command", {"start_command": "x" * 10001}, "at most 10000"),
    ("env_key_0", {"env_key_0": "1BAD"}, "not starting with a digit"),
    ("env_key_0", {"env_key_0": "BAD-NAME"}, "underscores"),
    ("env_key_0", {"env_key_0": "RUNPOD_POD_ID"}, "set by the console"),
    ("env_key_0", {"env_key_0": "", "env_value_0": "orphan"}, "needs a name"),
    ("env_key_1", {"env_rows": "2", "env_key_1": "MODEL", "env_value_1": "x"}, "set twice"),
    ("http_ports", {"http_ports": "0"}, "1 to 65535"),
    ("http_ports", {"http_ports": "70000"}, "1 to 65535"),
    ("http_ports", {"http_ports": "80a"}, "not a port"),
    ("tcp_ports", {"tcp_ports": "8888"}, "listed twice"),
    ("tcp_ports", {"http_ports": "1,2,3,4,5,6", "tcp_ports": "7,8,9,10,11"}, "At most 10"),
    ("pricing", {"pricing": "free"}, "valid choice"),
    ("pricing", {"compute": "cpu", "cpu_instance": "cpu3c-2-4", "pricing": "spot"}, "GPU pods"),
    ("bid_per_gpu", {"pricing": "spot"}, "Enter your bid"),
    ("bid_per_gpu", {"pricing": "spot", "bid_per_gpu": "0.10"}, "minimum bid"),
    ("bid_per_gpu", {"pricing": "spot", "bid_per_gpu": "abc"}, "number"),
    ("compute", {"compute": "tpu"}, "valid choice"),
]


@pytest.mark.parametrize(
    ("field", "changes", "message"),
    BAD_INPUTS,
    ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_INPUTS)],
)
def test_it_refuses_each_bad_field_with_a_message_next_to_it(client, url, field, changes, message):
    audit_before = AuditEvent.objects.count()
    response = client.post(url, valid(**changes))
    assert response.status_code == 400
    assert message.lower() in field_error(response, field).lower()
    assert Pod.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before


def test_it_refuses_a_network_volume_in_another_data_centre(client, url, team, parts):
    volume = NetworkVolume.objects.create(
        team=team, name="far", size_gb=10, data_center=parts["other_dc"]
    )
    response = client.post(url, valid(network_volume=volume.public_id, data_center=parts["dc"].id))
    assert "same data centre" in field_error(response, "network_volume")
    assert Pod.objects.count() == 0


def test_it_refuses_another_teams_network_volume(client, url, charlie, parts):
    theirs = NetworkVolume.objects.create(
        team=charlie.memberships.get().team, name="theirs", size_gb=10, data_center=parts["dc"]
    )
    response = client.post(url, valid(network_volume=theirs.public_id))
    assert "valid choice" in field_error(response, "network_volume")


def test_it_says_which_constraint_failed_when_no_machine_fits(client, url, team, parts):
    stopped_pod(team, parts["machine"], gpu_count=3, status=Pod.Status.RUNNING)
    response = client.post(url, valid(gpu_count="2"))
    assert response.status_code == 400
    assert "Not enough free A40" in field_error(response, "gpu_count")
    assert "at most 1 free" in field_error(response, "gpu_count")
    response = client.post(url, valid(cloud_type=CloudType.COMMUNITY))
    assert "No A40 machines in Community Cloud" in field_error(response, "cloud_type")
    response = client.post(url, valid(data_center=parts["other_dc"].id))
    assert "No A40 machines in Secure Cloud in US-TX-3" in field_error(response, "data_center")
    assert Pod.objects.count() == 1


def test_it_refuses_a_deploy_the_balance_cannot_hold(alice, team, parts, url):
    fund(team, "0.50", key="small")
    response = login(alice).post(url, valid())
    assert response.status_code == 400
    assert "balance" in response.content.decode().lower()
    assert Pod.objects.count() == 0


def test_it_deploys_a_valid_pod_and_redirects_to_it(client, url, team):
    response = client.post(url, valid())
    pod = Pod.objects.get()
    assert response.status_code == 302
    assert response["Location"] == pod.get_absolute_url()
    assert pod.status == Pod.Status.CREATED  # on_commit work does not run inside a test txn
    assert pod.env == [{"key": "MODEL", "value": "llama"}]
    assert pod.ports == [{"port": 8888, "protocol": "http"}, {"port": 22, "protocol": "tcp"}]
    assert len(pod.public_id) == 14 and pod.public_id.isalnum() and pod.public_id.islower()
    assert AuditEvent.objects.filter(action="pod.deployed", resource_id=pod.public_id).exists()


def test_it_answers_an_htmx_deploy_with_a_redirect_header(client, url):
    response = client.post(url, valid(), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == Pod.objects.get().get_absolute_url()


def test_it_deploys_a_spot_pod_at_its_bid(client, url):
    client.post(url, valid(pricing="spot", bid_per_gpu="0.30"))
    pod = Pod.objects.get()
    assert pod.pricing == "spot" and str(pod.bid_per_gpu) == "0.3000000000"
    assert str(pod.price().compute) == "0.3000000000"


def test_it_prefills_from_a_template_and_keeps_required_errors_quiet(client, url):
    template = PodTemplate.objects.create(
        name="Jupyter",
        image="jupyter/base-notebook",
        container_disk_gb=12,
        volume_gb=30,
        volume_mount_path="/notebooks",
        ports=[{"port": 8888, "protocol": "http"}],
        env=[{"key": "JUPYTER_TOKEN", "value": "t"}],
        start_command="jupyter lab",
    )
    response = client.get(url + f"?template={template.public_id}")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="jupyter/base-notebook"' in html
    assert 'value="/notebooks"' in html and 'value="JUPYTER_TOKEN"' in html
    assert "jupyter lab</textarea>" in html
    assert "data-error-for" not in html  # no GPU chosen yet, but nothing shouts


def test_it_adds_and_removes_environment_rows_without_javascript(client, url):
    data = valid(action="add_env")
    html = client.post(url, data).content.decode()
    assert 'name="env_key_1"' in html and Pod.objects.count() == 0
    data = valid(action="remove_env_0", env_rows="2", env_key_1="KEEP", env_value_1="me")
    html = client.post(url, data).content.decode()
    assert 'value="KEEP"' in html and 'value="MODEL"' not in html
    assert 'name="env_key_1"' not in html


def test_it_greys_out_gpu_types_without_free_gpus_and_offers_counts_that_fit(
    client, url, team, parts
):
    stopped_pod(team, parts["rtx_machine"], gpu_count=2, status=Pod.Status.RUNNING)
    html = client.post(
        url, valid(action="refresh", cloud_type="COMMUNITY"), HTTP_HX_REQUEST="true"
    ).content.decode()
    rtx = re.search(r'value="NVIDIA GeForce RTX 4090"[^>]*>', html).group(0)
    assert "disabled" in rtx
    assert "unavailable" in html
    html = client.post(url, valid(action="refresh")).content.decode()
    a40 = re.search(r'data-gpu="NVIDIA A40" data-free="(\d+)"', html)
    assert a40.group(1) == "4"
    counts = re.search(r'name="gpu_count".*?</select>', html, re.S).group(0)
    assert re.findall(r'<option value="(\d+)"', counts) == ["1", "2", "3", "4"]


def test_it_filters_gpu_cards_by_minimum_vram(client, url):
    html = client.post(url, valid(action="refresh", min_vram="48")).content.decode()
    assert 'data-gpu="NVIDIA A40"' in html
    assert 'data-gpu="NVIDIA GeForce RTX 4090"' not in html


def test_it_reviews_the_price_split_and_the_runway(client, url):
    html = client.post(url, valid(action="refresh", tcp_ports="")).content.decode()
    assert 'data-testid="review"' in html
    assert "$0.7908" in html  # $0.79 compute + container disk and volume storage, 4 places
    assert re.search(r"compute \$0\.79(00)? · storage \$0\.0008", html)
    assert "Within your limit" in html
    assert "126.4 h (5.3 days)" in html  # $100 / $0.7908/h


def test_it_is_forbidden_to_basic_members(member_with_role, url):
    assert member_with_role("basic").post(url, valid()).status_code == 403
    assert Pod.objects.count() == 0


# Partial updates -----------------------------------------------------------------------------


def live(client, url, **changes) -> str:
    """The wizard's answer to a change, as htmx asks for it."""
    response = client.post(url, valid(action="refresh", **changes), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def oob_ids(html: str) -> list[str]:
    return re.findall(r'<\w+ id="([\w-]+)"[^>]*hx-swap-oob="true"', html)


def test_a_change_swaps_only_the_parts_that_depend_on_it_and_no_input(client, url):
    html = live(client, url, container_disk_gb="7")
    assert sorted(oob_ids(html)) == sorted(
        [
            "wizard-gpus",
            "wizard-gpu-count",
            "wizard-review",
            "wizard-nonfield",
            "wizard-deploy-label",
            "wizard-live-errors",
        ]
    )
    # Nothing a person types in: only the GPU radios and the count select are re-rendered.
    inputs = re.findall(r"<(input|textarea)\b[^>]*>", html)
    assert inputs and all(tag == "input" for tag in inputs)
    assert not re.search(r'<input(?![^>]*type="radio")[^>]*>', html)
    assert 'name="image"' not in html and 'name="env_key_0"' not in html
    assert "$0.7911" in html  # the review follows the disk size typed: 7 GB, not 5


def test_every_part_a_change_swaps_has_its_place_on_the_page(client, url):
    page = client.get(url).content.decode()
    for part in oob_ids(live(client, url, http_ports="80a")):
        assert f'id="{part}"' in page, part


def test_a_change_reports_mistakes_next_to_their_fields_but_not_missing_answers(client, url):
    html = live(client, url, http_ports="80a", image="")
    errors = re.search(r'id="wizard-live-errors".*?</div>\s*$', html, re.S).group(0)
    assert 'data-error-for="http_ports">“80a” is not a port' in errors
    assert 'data-errors-for="image"' not in errors  # required, not yet wrong
    assert 'data-testid="review"' not in html


def test_the_page_carries_each_templates_values_for_the_browser_to_apply(client, url):
    template = PodTemplate.objects.create(
        name="Mine", image="my/image:1", ports=[{"port": 7000, "protocol": "http"}]
    )
    html = client.get(url).content.decode()
    presets = re.search(
        r'<script id="wizard-templates" type="application/json">(.*?)</script>', html
    )
    assert f'"{template.public_id}": {{"image": "my/image:1"' in presets.group(1)
    assert '"http_ports": "7000"' in presets.group(1)


def test_values_edited_after_a_template_was_applied_are_deployed(client, url):
    template = PodTemplate.objects.create(name="T", image="from/template:1", container_disk_gb=9)
    data = valid(template=template.public_id, applied_template=template.public_id)
    response = client.post(url, {**data, "image": "typed/image:2"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    pod = Pod.objects.get()
    assert (pod.image, pod.container_disk_gb, pod.template) == ("typed/image:2", 5, template)


def test_a_refused_deploy_answers_with_its_errors_not_a_new_form(client, url):
    response = client.post(url, valid(http_ports="0"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200  # htmx swaps 200s only
    assert 'data-error-for="http_ports"' in html and 'name="image"' not in html
    assert Pod.objects.count() == 0


def test_a_count_no_machine_holds_becomes_the_largest_while_filling_in(client, url):
    html = live(client, url, gpu_count="8")
    counts = re.search(r'name="gpu_count".*?</select>', html, re.S).group(0)
    assert re.findall(r'<option value="(\d+)" selected', counts) == ["4"]
    assert 'data-testid="review"' in html


# Availability and its reasons ----------------------------------------------------------------


def card(html: str, gpu: str) -> str:
    start = html.index(f'value="{gpu}"')
    return html[html.rindex("<input", 0, start) : html.index("</label>", start)]


@pytest.fixture
def far_volume(team, parts) -> NetworkVolume:
    return NetworkVolume.objects.create(
        team=team, name="far-data", size_gb=50, data_center=parts["other_dc"]
    )


def test_a_network_volume_greys_out_gpus_not_in_its_data_centre(client, url, parts, far_volume):
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
    html = live(client, url, network_volume=far_volume.public_id, gpu_type=None)
    a40 = card(html, "NVIDIA A40")
    assert "disabled" in a40 and "Not in US-TX-3, where volume far-data is." in a40
    rtx = card(html, "NVIDIA GeForce RTX 4090")
    assert "disabled" not in rtx and "2 free" in rtx
    html = live(client, url, gpu_type=None)  # without the volume, the A40s are there again
    assert "disabled" not in card(html, "NVIDIA A40")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"cloud_type": "COMMUNITY"}, "None in Community Cloud."),
        ({"data_center": "US-TX-3"}, "None in Secure Cloud in US-TX-3."),
        (
            {"data_center": "EU-RO-1", "network_volume": "far"},
            "far-data is in US-TX-3, not EU-RO-1",
        ),
    ],
)
def test_each_unavailable_gpu_says_why(client, url, far_volume, changes, reason):
    if changes.get("network_volume"):
        changes["network_volume"] = far_volume.public_id
    html = live(client, url, gpu_type=None, **changes)
    assert reason in card(html, "NVIDIA A40")


def test_gpus_all_in_use_say_so_unless_spot_pods_hold_them(client, url, team, parts):
    machine = parts["machine"]
    stopped_pod(team, machine, gpu_count=3, status=Pod.Status.RUNNING)
    spot = stopped_pod(team, machine, gpu_count=1, status=Pod.Status.RUNNING, pricing="spot")
    Pod.objects.filter(pk=spot.pk).update(bid_per_gpu="0.30")
    on_demand = card(live(client, url, gpu_type=None), "NVIDIA A40")
    assert "disabled" not in on_demand and "0 free" in on_demand  # it preempts the spot pod
    spot_html = live(client, url, gpu_type=None, pricing="spot", bid_per_gpu="0.50")
    assert "No Secure Cloud machine free." in card(spot_html, "NVIDIA A40")


def test_the_chosen_gpu_warns_before_deploy_when_too_few_are_free(client, url, team, parts):
    stopped_pod(team, parts["machine"], gpu_count=3, status=Pod.Status.RUNNING)
    html = live(client, url, gpu_count="2")
    assert "At most 1 free on one machine; you chose 2." in card(html, "NVIDIA A40")
    assert 'data-testid="review-blocked"' in html


def test_a_template_for_another_runtime_greys_out_gpus_no_machine_of_it_has(client, url):
    template = PodTemplate.objects.create(name="Containers", image="img:1", runtimes=["docker"])
    html = live(client, url, gpu_type=None, template=template.public_id)
    assert "The template runs on docker machines; none has this GPU." in card(html, "NVIDIA A40")


# The review by role ---------------------------------------------------------------------------


def test_a_dev_sees_the_price_but_not_the_teams_balance_or_runway(
    member_with_role, team, parts, url
):
    fund(team, "12.34", key="visible")
    html = live(member_with_role("dev"), url)
    assert 'data-testid="review-total"' in html
    assert 'data-testid="review-runway"' not in html
    assert "$12.34" not in html and "Within the team's credit and spend limit" in html


def test_an_admin_sees_the_balance_and_runway(client, url):
    html = live(client, url)
    assert 'data-testid="review-runway"' in html and "$100.00" in html


def test_a_dev_refused_for_funds_is_not_told_the_balance(member_with_role, team, parts, url):
    dev = member_with_role("dev")
    review = live(dev, url, gpu_count="4")  # $3.16/h: more than the $0 balance holds an hour
    assert "ask a team member with billing access" in review.lower()
    assert "balance" not in review.lower()
    response = dev.post(url, valid(gpu_count="4"))
    assert response.status_code == 400 and Pod.objects.count() == 0
    assert "Ask a team member with billing access" in response.content.decode()
    assert "Your balance" not in response.content.decode()


def test_a_change_runs_the_same_few_queries_for_a_larger_catalogue(client, url, team, parts):
    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            live(client, url, network_volume=volume.public_id, template=template.public_id)
        return len(context.captured_queries)

    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=5, data_center=parts["dc"])
    template = PodTemplate.objects.create(name="T", image="img:1")
    few = count()
    for i in range(10):
        gpu = GpuType.objects.create(
            id=f"GPU {i}",
            display_name=f"G{i}",
            memory_gb=16,
            secure_price=1,
            community_price=1,
            min_bid=1,
        )
        Machine.objects.create(
            name=f"m{i}",
            data_center=parts["dc"],
            cloud_type=CloudType.SECURE,
            gpu_type=gpu,
            gpu_count=2,
            vcpu=8,
            memory_gb=32,
            disk_gb=100,
        )
        stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=0)
        PodTemplate.objects.create(name=f"T{i}", image="img:1")
    assert count() == few <= 20


def test_the_timer_asks_for_at_least_a_minute_in_words():
    form = TimerForm({"action": "stop", "hours": "0.001"})
    assert form.errors["hours"] == ["Set the timer to at least 1 minute (0.0167 hours)."]

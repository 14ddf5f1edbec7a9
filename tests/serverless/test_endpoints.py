"""Endpoint pages: create, edit (workers become stale), delete, the request tester and a job's
page; each write audited; outsiders get 404 and roles without the capability 403."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from serverless.models import Endpoint, Job, Worker
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import catalogue, fund
from tests.serverless.factories import a_worker, an_endpoint, serverless_template

pytestmark = pytest.mark.django_db


def form_data(template, **overrides) -> dict:
    data = {
        "name": "sdxl",
        "template": template.pk,
        "compute": "gpu",
        "gpu_0": "NVIDIA GeForce RTX 4090",
        "gpu_1": "NVIDIA A40",
        "gpu_count": 1,
        "workers_min": 0,
        "workers_max": 3,
        "idle_timeout": 5,
        "execution_timeout": 600,
        "scaler_type": "QUEUE_DELAY",
        "scaler_value": 4,
        "env_text": "MODEL=sdxl\nSTEPS=30",
    }
    return {**data, **overrides}


@pytest.fixture
def parts(db):
    return catalogue()


def test_it_creates_an_endpoint_with_gpu_types_in_priority_order(team, alice, parts):
    template = serverless_template(team)
    response = login(alice).post(reverse("endpoint_create", args=[team.slug]), form_data(template))
    endpoint = Endpoint.objects.get()
    assert response.status_code == 302 and response["Location"] == endpoint.get_absolute_url()
    assert endpoint.gpu_type_ids == ["NVIDIA GeForce RTX 4090", "NVIDIA A40"]
    assert endpoint.env == [{"key": "MODEL", "value": "sdxl"}, {"key": "STEPS", "value": "30"}]
    assert (endpoint.workers_min, endpoint.workers_max, endpoint.idle_timeout) == (0, 3, 5)
    event = AuditEvent.objects.get(action="endpoint.created")
    assert (event.actor, event.resource_id) == (alice, endpoint.public_id)


def test_it_uses_runpods_defaults(team):
    endpoint = an_endpoint(team)
    assert (endpoint.workers_min, endpoint.workers_max) == (0, 3)
    assert (endpoint.idle_timeout, endpoint.execution_timeout) == (5, 600)


def test_it_creates_a_cpu_endpoint(team, alice, parts):
    data = form_data(serverless_template(team), compute="cpu", cpu_instance="cpu3c-2-4")
    login(alice).post(reverse("endpoint_create", args=[team.slug]), data)
    endpoint = Endpoint.objects.get()
    assert endpoint.gpu_type_ids == [] and endpoint.cpu_instance_id == "cpu3c-2-4"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"gpu_0": "", "gpu_1": ""}, "gpu_0"),
        ({"gpu_1": "NVIDIA GeForce RTX 4090"}, "gpu_1"),
        ({"workers_min": 4, "workers_max": 3}, "workers_min"),
        ({"execution_timeout": 1}, "execution_timeout"),
        ({"env_text": "LD_PRELOAD=/x.so"}, "env_text"),
        ({"env_text": "NOVALUE"}, "env_text"),
        ({"compute": "cpu"}, "cpu_instance"),
    ],
)
def test_it_refuses_bad_settings(team, alice, parts, overrides, field):
    data = form_data(serverless_template(team), **overrides)
    response = login(alice).post(reverse("endpoint_create", args=[team.slug]), data)
    assert response.status_code == 200 and field in response.context["form"].errors
    assert not Endpoint.objects.exists()


def test_it_offers_only_serverless_templates_the_team_can_see(team, alice, charlie, parts):
    mine = serverless_template(team)
    foreign = serverless_template(charlie.memberships.get().team)
    response = login(alice).post(reverse("endpoint_create", args=[team.slug]), form_data(foreign))
    assert "template" in response.context["form"].errors
    assert list(response.context["form"].fields["template"].queryset) == [mine]


def test_editing_bumps_the_version_so_running_workers_are_stale(team, alice, parts):
    endpoint = an_endpoint(team)
    worker, _ = a_worker(endpoint)
    url = reverse("endpoint_edit", args=[team.slug, endpoint.public_id])
    page = login(alice).get(url)
    assert page.context["form"].initial["gpu_0"] == "NVIDIA A40"
    login(alice).post(url, form_data(endpoint.template, name="renamed", workers_max=5))
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.workers_max, endpoint.version) == ("renamed", 5, 2)
    assert Worker.objects.get(pk=worker.pk).is_stale
    assert AuditEvent.objects.filter(action="endpoint.updated", actor=alice).count() == 1


def test_it_deletes_an_endpoint_with_its_jobs(team, alice):
    endpoint = an_endpoint(team)
    Job.objects.create(endpoint=endpoint, input={}, execution_timeout=600)
    login(alice).post(reverse("endpoint_delete", args=[team.slug, endpoint.public_id]))
    assert not Endpoint.objects.exists() and not Job.objects.exists()
    assert AuditEvent.objects.filter(action="endpoint.deleted").count() == 1


def test_the_request_tester_queues_a_job_and_shows_it(team, alice):
    fund(team)  # jobs need funds (serverless.metering.refusal)
    endpoint = an_endpoint(team)
    client = login(alice)
    url = reverse("endpoint_test_job", args=[team.slug, endpoint.public_id])
    response = client.post(url, {"input": '{"prompt": "hi"}'})
    job = Job.objects.get()
    assert job.input == {"prompt": "hi"} and job.status == Job.Status.IN_QUEUE
    assert response["Location"].endswith(f"/jobs/{job.public_id}/")
    page = client.get(response["Location"])
    assert b'http-equiv="refresh"' in page.content and b"IN_QUEUE" in page.content
    detail = client.get(endpoint.get_absolute_url())
    assert detail.context["health"]["jobs"]["inQueue"] == 1
    assert detail.context["jobs"][0].input_preview == '{"prompt": "hi"}'


def test_the_request_tester_refuses_bad_json(team, alice):
    endpoint = an_endpoint(team)
    url = reverse("endpoint_test_job", args=[team.slug, endpoint.public_id])
    response = login(alice).post(url, {"input": "{nope"})
    assert response.status_code == 400 and not Job.objects.exists()


def test_a_finished_jobs_page_shows_output_and_stops_refreshing(team, alice):
    endpoint = an_endpoint(team)
    job = Job.objects.create(
        endpoint=endpoint, input={}, execution_timeout=600, status="COMPLETED", output={"x": 1}
    )
    url = reverse("endpoint_job", args=[team.slug, endpoint.public_id, job.public_id])
    page = login(alice).get(url)
    assert b'http-equiv="refresh"' not in page.content and b"&quot;x&quot;: 1" in page.content


def test_the_list_counts_queued_jobs(team, alice, bob):
    endpoint = an_endpoint(team)
    Job.objects.create(endpoint=endpoint, input={}, execution_timeout=600)
    response = login(bob).get(reverse("endpoint_list", args=[team.slug]))
    [listed] = response.context["endpoints"]
    assert (listed.jobs_in_queue, listed.jobs_in_progress) == (1, 0)


def test_outsiders_get_404_and_basic_members_cannot_change_endpoints(
    team, charlie, member_with_role
):
    endpoint = an_endpoint(team)
    detail = reverse("endpoint_detail", args=[team.slug, endpoint.public_id])
    assert login(charlie).get(detail).status_code == 404
    basic = member_with_role("basic")
    assert basic.get(detail).status_code == 200
    edit = reverse("endpoint_edit", args=[team.slug, endpoint.public_id])
    assert basic.post(edit, {"name": "x"}).status_code == 403
    test_job = reverse("endpoint_test_job", args=[team.slug, endpoint.public_id])
    assert basic.post(test_job, {"input": "{}"}).status_code == 403
    assert member_with_role("billing").get(detail).status_code == 403
    assert not Job.objects.exists()


def test_another_teams_endpoint_is_a_404_in_my_team(team, alice, charlie):
    theirs = an_endpoint(charlie.memberships.get().team)
    url = reverse("endpoint_detail", args=[team.slug, theirs.public_id])
    assert login(alice).get(url).status_code == 404


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    return len(context.captured_queries)


def add_endpoint_rows(team, endpoint, count: int) -> None:
    for n in range(count):
        an_endpoint(team, name=f"endpoint {n}")
        a_worker(endpoint)
        job = Job.objects.create(endpoint=endpoint, input={"n": n}, execution_timeout=600)
        worker = Worker.objects.filter(endpoint=endpoint).last()
        Job.objects.filter(pk=job.pk).update(worker=worker, status="IN_PROGRESS")


@pytest.mark.parametrize("name", ["endpoint_list", "endpoint_detail"])
def test_the_page_runs_as_many_queries_for_12_rows_as_for_2(team, alice, name):
    endpoint = an_endpoint(team)
    args = [team.slug] if name == "endpoint_list" else [team.slug, endpoint.public_id]
    url, client = reverse(name, args=args), login(alice)
    add_endpoint_rows(team, endpoint, 2)
    few = queries(client, url)
    add_endpoint_rows(team, endpoint, 10)
    assert queries(client, url) == few <= 20


def test_the_sidebar_links_serverless_instead_of_saying_coming(team, alice):
    page = login(alice).get(reverse("dashboard", args=[team.slug])).content.decode()
    assert f'href="{reverse("endpoint_list", args=[team.slug])}"' in page
    assert "Serverless <span" not in page  # the "coming" badge follows the label

"""Each main page runs a bounded number of queries, the same for 2 rows as for 12 (no N+1)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.services import adjust_balance
from pods.metering import floor_minute, meter
from pods.models import NetworkVolume, Pod, PodTemplate
from tests.conftest import login
from tests.pods.factories import catalogue, stopped_pod

# url name -> most queries the page may run (session, user, membership, team switcher and the
# page's own, whatever the number of rows).
PAGES = {
    "dashboard": 16,
    "pod_list": 16,
    "template_list": 14,
    "storage": 16,
    "pod_deploy": 24,
    "billing": 23,  # the open accruals: pods' (a savepoint, JIT off) and serverless workers'
    "billing_ledger": 17,
}


def add_rows(team, parts, count: int) -> None:
    for i in range(count):
        pod = stopped_pod(team, parts["machine"], name=f"pod {i}", status=Pod.Status.RUNNING)
        Pod.objects.filter(pk=pod.pk).update(metered_until=floor_minute(pod.created_at))
        PodTemplate.objects.create(team=team, name=f"template {i}", image="img")
        NetworkVolume.objects.create(
            team=team, name=f"volume {i}", size_gb=10, data_center=parts["dc"]
        )
        adjust_balance(team=team, amount="1", reason=f"credit {i}", actor=None)
    meter(until=floor_minute(pod.created_at) + timedelta(minutes=2))


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(context.captured_queries)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_page_runs_a_bounded_number_of_queries(name, team, alice):
    parts = catalogue()
    client = login(alice)
    url = reverse(name, args=[team.slug])
    add_rows(team, parts, 2)
    few = queries(client, url)
    add_rows(team, parts, 10)
    many = queries(client, url)
    assert many == few, f"{name}: {few} queries with 2 rows, {many} with 12"
    assert many <= PAGES[name]


def test_the_pod_page_runs_a_bounded_number_of_queries(team, alice):
    parts = catalogue()
    pod = stopped_pod(team, parts["machine"])
    url = reverse("pod_detail", args=[team.slug, pod.public_id])
    assert queries(login(alice), url) <= 22

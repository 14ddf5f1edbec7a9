"""A pod's own key (RUNPOD_API_KEY): a real pod on the process runtime is given one, it
authenticates the API as the pod (a Dev of the pod's team, read/write, never billing or admin),
shows in the key list as the pod's, is audited, and stops working when the pod stops or is
terminated."""

import re

import pytest
from django.test import Client
from django.urls import path
from rest_framework import mixins, serializers
from rest_framework.response import Response

from api.viewsets import TeamScopedViewSet
from pods import services
from pods.models import Pod
from pods.runtime import get_backend
from teams import audit
from teams.models import ApiKey, AuditEvent
from tests.conftest import login
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (shared fixtures)
from tests.pods.factories import deploy_request, fund
from tests.waiting import wait_for

PRINTS_ITS_KEY = 'echo "key=$RUNPOD_API_KEY"; exec sleep 600'


class ProbeSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["action", "actor_label"]


class ProbeViewSet(mixins.ListModelMixin, TeamScopedViewSet):
    """A team-scoped write that needs "deploy", as the pods and serverless APIs will have:
    it records who did it, the way every service does."""

    queryset = AuditEvent.objects.all()
    serializer_class = ProbeSerializer
    capabilities = {"list": "use", "create": "deploy", "destroy": "billing"}

    def create(self, request):
        event = audit.record(
            actor=request.user, team=self.team, action="probe.written", resource_type="probe"
        )
        return Response(ProbeSerializer(event).data, status=201)

    def destroy(self, request, pk=None):
        return Response(status=204)


urlpatterns = [
    path("probe/", ProbeViewSet.as_view({"get": "list", "post": "create"})),
    path("probe/<int:pk>/", ProbeViewSet.as_view({"delete": "destroy"})),
]


def key_inside(pod: Pod) -> str:
    """The RUNPOD_API_KEY the pod's own process sees, as its latest run printed it."""

    def printed():
        pod.refresh_from_db()
        text = get_backend("process").read_logs(pod.runtime_handle).text
        return re.findall(r"key=(rpa_\S+)", text)

    return wait_for(printed)[-1]


@pytest.fixture
def pod(team, alice, parts, reap, django_capture_on_commit_callbacks) -> Pod:  # noqa: F811
    fund(team)
    with django_capture_on_commit_callbacks(execute=True):
        pod = services.deploy_pod(
            actor=alice,
            team=team,
            request=deploy_request(parts["a40"], start_command=PRINTS_ITS_KEY),
        )
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING
    return pod


def as_worker(secret: str) -> dict:
    """The serverless worker sends the key raw in Authorization (runpod-api.md 4.2, 4.6)."""
    return {"HTTP_AUTHORIZATION": secret}


def test_the_key_given_to_a_pod_authenticates_as_that_pod_in_its_team(pod):
    secret = key_inside(pod)
    for headers in (as_worker(secret), {"HTTP_AUTHORIZATION": f"Bearer {secret}"}):
        response = Client().get("/api/v1/me", **headers)
        assert response.status_code == 200
        body = response.json()
        assert body["team"]["slug"] == "acme"
        assert body["role"] == "dev"
        assert body["user"] is None
        assert body["api_key"]["pod"] == pod.public_id
        assert body["api_key"]["permission"] == "read_write"


@pytest.mark.urls("tests.api.test_pod_api_keys")
def test_a_pod_key_reads_and_writes_but_never_reaches_billing_or_admin(pod, charlie):
    secret = key_inside(pod)
    client = Client(**as_worker(secret))
    written = client.post("/probe/", {}, content_type="application/x-www-form-urlencoded")
    assert written.status_code == 201
    assert written.json()["actor_label"] == f"pod {pod.public_id}"
    event = AuditEvent.objects.get(action="probe.written")
    assert event.team == pod.team and event.actor is None
    assert client.get("/probe/").status_code == 200
    assert client.delete("/probe/1/").status_code == 403  # a billing action
    # Only the pod's team, whatever team the request names.
    other_team = charlie.memberships.get().team
    listed = client.get(f"/probe/?team={other_team.slug}").json()["results"]
    assert len(listed) == AuditEvent.objects.filter(team=pod.team).count()
    assert "team.created" not in {row["action"] for row in listed}  # charlie's team's event


def test_a_pod_key_cannot_manage_api_keys(pod):
    client = Client(**as_worker(key_inside(pod)))
    assert client.get("/api/v1/api-keys").status_code == 403
    assert client.post("/api/v1/api-keys", {"name": "escalate"}).status_code == 403
    assert ApiKey.objects.count() == 1


def test_it_is_listed_as_the_pods_key(pod, alice):
    page = login(alice).get("/t/acme/settings/api-keys/").content.decode()
    owner = re.search(r'data-testid="key-owner">(.*?)</div>', page, re.S).group(1)
    assert f'for pod <a href="/t/acme/pods/{pod.public_id}/">' in owner
    assert "former member" not in page
    listed = login(alice).get("/api/v1/api-keys?team=acme").json()["results"]
    assert [(row["pod"], row["created_by"]) for row in listed] == [(pod.public_id, None)]


def test_it_is_revoked_when_the_pod_stops_and_a_new_one_given_on_start(
    pod, alice, django_capture_on_commit_callbacks
):
    first = key_inside(pod)
    with django_capture_on_commit_callbacks(execute=True):
        services.stop_pod(actor=alice, pod=pod)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED
    assert Client().get("/api/v1/me", **as_worker(first)).status_code == 401
    with django_capture_on_commit_callbacks(execute=True):
        services.start_pod(actor=alice, pod=pod)
    second = wait_for(lambda: (key := key_inside(pod)) != first and key)
    assert Client().get("/api/v1/me", **as_worker(second)).status_code == 200
    assert Client().get("/api/v1/me", **as_worker(first)).status_code == 401


def test_it_is_revoked_when_the_pod_is_terminated_and_audited(
    pod, alice, django_capture_on_commit_callbacks
):
    secret = key_inside(pod)
    key_id = pod.api_key.public_id
    with django_capture_on_commit_callbacks(execute=True):
        services.terminate_pod(actor=alice, pod=pod)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.TERMINATED
    assert Client().get("/api/v1/me", **as_worker(secret)).status_code == 401
    assert not ApiKey.objects.filter(pod_public_id=pod.public_id).exists()
    events = AuditEvent.objects.filter(resource_type="api_key", resource_id=key_id)
    assert sorted(events.values_list("action", "actor_label")) == [
        ("api_key.created", "system"),
        ("api_key.revoked", "system"),
    ]
    assert all(event.details["pod"] == pod.public_id for event in events)

"""One error envelope for every refusal, the Idempotency-Key contract on POST, and the per-key
rate limit counted in Redis and shared with /graphql."""

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from api.idempotency import expire_keys
from api.models import IdempotentRequest
from api.tasks import expire_idempotency_keys_task
from api.throttling import ApiKeyRateThrottle
from pods.models import NetworkVolume, Pod
from teams.models import AuditEvent
from tests.api.helpers import key_client
from tests.pods.factories import catalogue, fund

VOLUME = {"name": "data", "size_gb": 10, "data_center": "EU-RO-1"}
DEPLOY = {"gpu_type": "NVIDIA A40", "gpu_count": 1, "image": "python:3.11-slim"}


@pytest.fixture
def api(team, alice):
    catalogue()
    fund(team)
    return key_client(team, alice)[0]


def envelope(response) -> dict:
    body = response.json()
    assert set(body) == {"code", "message", "errors"}, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_validation_errors_list_fields(api):
    body = envelope(api.post("/api/v1/network-volumes/", {"name": ""}, format="json"))
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"name", "size_gb", "data_center"}
    assert all(isinstance(m, str) for ms in body["errors"].values() for m in ms)


def test_not_found_unauthenticated_bad_key_and_bad_json(api):
    assert envelope(api.get("/api/v1/pods/nosuchpod/"))["code"] == "not_found"
    anonymous = APIClient().get("/api/v1/pods/")
    assert anonymous.status_code in (401, 403)
    assert envelope(anonymous)["code"] == "not_authenticated"
    bad = APIClient(HTTP_AUTHORIZATION="Bearer rpa_wrong").get("/api/v1/pods/")
    assert bad.status_code == 401 and envelope(bad)["code"] == "authentication_failed"
    broken = api.post("/api/v1/pods/", "{not json", content_type="application/json")
    assert broken.status_code == 400 and envelope(broken)["code"] == "parse_error"


def test_the_same_key_and_body_replays_without_doing_it_twice(api):
    first = api.post("/api/v1/pods/", DEPLOY, format="json", HTTP_IDEMPOTENCY_KEY="deploy-1")
    assert first.status_code == 201, first.json()
    again = api.post("/api/v1/pods/", DEPLOY, format="json", HTTP_IDEMPOTENCY_KEY="deploy-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Pod.objects.count() == 1
    assert AuditEvent.objects.filter(action="pod.deployed").count() == 1


def test_the_same_key_with_another_body_is_refused(api):
    api.post("/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="k")
    other = {**VOLUME, "size_gb": 20}
    response = api.post("/api/v1/network-volumes/", other, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 422 and envelope(response)["code"] == "unprocessable"
    assert NetworkVolume.objects.get().size_gb == 10


def test_a_key_still_being_processed_is_a_conflict(api, team):
    IdempotentRequest.objects.create(team=team, key="busy", fingerprint="x")
    # The same fingerprint as a real request, but no answer stored yet: the first is running.
    row = IdempotentRequest.objects.get(key="busy")
    api.post("/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="probe")
    row.fingerprint = IdempotentRequest.objects.get(key="probe").fingerprint
    row.save()
    response = api.post(
        "/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="busy"
    )
    assert response.status_code == 409 and envelope(response)["code"] == "conflict"
    assert NetworkVolume.objects.count() == 1


def test_keys_are_per_team(api, charlie):
    theirs, _ = key_client(charlie.memberships.get().team, charlie)
    api.post("/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = theirs.post(
        "/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    assert response.status_code == 201
    assert NetworkVolume.objects.count() == 2


def test_validation_errors_are_replayed_too_and_an_oversized_key_is_refused(api):
    bad = {"name": "x"}
    first = api.post("/api/v1/network-volumes/", bad, format="json", HTTP_IDEMPOTENCY_KEY="v")
    again = api.post("/api/v1/network-volumes/", bad, format="json", HTTP_IDEMPOTENCY_KEY="v")
    assert first.status_code == again.status_code == 400 and first.json() == again.json()
    long = api.post(
        "/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="x" * 201
    )
    assert long.status_code == 400 and "Idempotency-Key" in envelope(long)["errors"]
    assert not NetworkVolume.objects.exists()


def test_requests_over_the_rate_limit_get_429_per_key(team, alice, monkeypatch):
    # The throttle reads its rates once, at import: narrow them on the class for this test.
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api": "3/min"})
    cache.clear()
    first, _ = key_client(team, alice)
    second, _ = key_client(team, alice)
    codes = [first.get("/api/v1/pods/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = first.get("/api/v1/pods/")
    assert envelope(limited)["code"] == "throttled" and int(limited["Retry-After"]) > 0
    assert second.get("/api/v1/pods/").status_code == 200  # another key, its own count
    cache.clear()


def _write_routes() -> list:
    from tests.test_role_matrix import API_ROUTES

    return [r for r in API_ROUTES if r.method not in ("GET", "HEAD", "OPTIONS")]


@pytest.mark.parametrize(
    "route", _write_routes(), ids=lambda r: f"{r.name}-{r.method}" if hasattr(r, "name") else ""
)
def test_every_write_action_refuses_a_read_only_key(team, alice, route):
    import json

    from django.urls import reverse

    client, _ = key_client(team, alice, permission="read_only")
    url = reverse(route.name, kwargs=route.kwargs_for(team))
    events = AuditEvent.objects.count()
    response = client.generic(
        route.method, url, json.dumps(route.data), content_type="application/json"
    )
    assert response.status_code == 403, (url, response.content)
    if route.name.startswith("rest-"):  # RunPod's REST v1 at /v1/ (api/runpod_rest/base.py)
        assert response.json() == {"error": "This API key is read-only.", "status": 403}
    else:
        assert envelope(response)["code"] == "permission_denied"
    assert AuditEvent.objects.count() == events


def test_a_key_is_forgotten_after_the_ttl_and_the_sweep_deletes_old_rows(api, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    headers = {"HTTP_IDEMPOTENCY_KEY": "vol-1"}
    assert api.post("/api/v1/network-volumes/", VOLUME, format="json", **headers).status_code == 201
    other = {**VOLUME, "name": "other"}
    assert api.post("/api/v1/network-volumes/", other, format="json", **headers).status_code == 422
    old = timezone.now() - timedelta(hours=25)
    IdempotentRequest.objects.update(created_at=old)
    # Past the TTL the key is a new request, even before the sweep ran.
    response = api.post("/api/v1/network-volumes/", other, format="json", **headers)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert NetworkVolume.objects.count() == 2
    stale = api.post("/api/v1/network-volumes/", VOLUME, format="json", HTTP_IDEMPOTENCY_KEY="v2")
    assert stale.status_code == 201
    IdempotentRequest.objects.filter(key="v2").update(created_at=old)
    out = StringIO()
    call_command("expire_idempotency_keys", stdout=out)
    assert "Deleted 1 " in out.getvalue()
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["vol-1"]
    assert expire_keys(now=timezone.now() + timedelta(hours=25)) == 1
    assert not IdempotentRequest.objects.exists()


def test_the_expiry_runs_on_celery_beat():
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"].startswith("api.tasks.")
    )
    assert entry["task"] == f"api.tasks.{expire_idempotency_keys_task.__name__}"


def test_graphql_and_rest_share_one_rate_limit_per_key(team, alice, monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api": "3/min"})
    cache.clear()
    client, _ = key_client(team, alice)
    graphql = {"query": "{ myself { id } }"}
    assert client.get("/api/v1/me/").status_code == 200
    assert client.post("/graphql", graphql, format="json").status_code == 200
    assert client.get("/api/v1/me/").status_code == 200
    limited = client.post("/graphql", graphql, format="json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert client.get("/api/v1/me/").status_code == 429
    other, _ = key_client(team, alice)
    assert other.post("/graphql", graphql, format="json").status_code == 200
    cache.clear()

"""Settings → API keys in the console: create (secret shown once), toggle, revoke."""

from django.test import Client
from django.urls import reverse

from teams import services
from teams.models import ApiKey, AuditEvent, hash_api_key
from tests.conftest import login

KEYS_URL = reverse("api_keys", args=["acme"])


def test_it_shows_the_secret_once(team, alice):
    client = login(alice)
    response = client.post(KEYS_URL, {"name": "Training", "permission": "read_only"}, follow=True)
    key = ApiKey.objects.get()
    secret = response.context["new_key"]["secret"]
    assert secret.encode() in response.content
    assert key.key_hash == hash_api_key(secret)
    assert (key.name, key.permission, key.created_by) == ("Training", "read_only", alice)
    assert secret.encode() not in client.get(KEYS_URL).content
    assert key.prefix.encode() in client.get(KEYS_URL).content


def test_it_requires_a_name(team, alice):
    response = login(alice).post(KEYS_URL, {"name": "", "permission": "read_write"})
    assert response.status_code == 200
    assert not ApiKey.objects.exists()


def test_it_disables_and_enables_a_key(team, alice):
    key, secret = services.create_api_key(
        team=team, actor=alice, name="CI", permission="read_write"
    )
    client = login(alice)
    toggle = reverse("api_key_toggle", args=["acme", key.public_id])
    client.post(toggle)
    assert not ApiKey.objects.get().is_enabled
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    client.post(toggle)
    assert ApiKey.objects.get().is_enabled
    actions = list(
        AuditEvent.objects.filter(resource_type="api_key").values_list("action", flat=True)
    )
    assert sorted(actions) == ["api_key.created", "api_key.disabled", "api_key.enabled"]


def test_it_revokes_a_key(team, alice):
    key, secret = services.create_api_key(
        team=team, actor=alice, name="CI", permission="read_write"
    )
    response = login(alice).post(
        reverse("api_key_revoke", args=["acme", key.public_id]), follow=True
    )
    assert "API key “CI” revoked".encode() in response.content
    assert not ApiKey.objects.exists()
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert AuditEvent.objects.filter(action="api_key.revoked", resource_id=key.public_id)


def test_it_keeps_keys_to_their_team(team, alice, charlie):
    personal = charlie.memberships.get().team
    key, _ = services.create_api_key(team=personal, actor=charlie, name="x", permission="read_only")
    response = login(alice).post(reverse("api_key_revoke", args=["acme", key.public_id]))
    assert response.status_code == 404
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_it_renames_the_team_from_settings(team, alice):
    response = login(alice).post(reverse("settings", args=["acme"]), {"name": "Acme Labs"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.name == "Acme Labs"
    event = AuditEvent.objects.get(action="team.renamed")
    assert event.details == {"old_name": "Acme", "name": "Acme Labs"}

"""API keys end to end through the real API: the three ways of sending a key, disabled,
revoked and read-only keys, and the creator's current role deciding what a key may do."""

import pytest
from django.test import Client

from teams import services
from teams.models import ApiKey, AuditEvent, Membership, Role
from tests.conftest import login


def make_key(team, user, permission=ApiKey.Permission.READ_WRITE) -> tuple[ApiKey, str]:
    return services.create_api_key(team=team, actor=user, name="test", permission=permission)


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def alice_key(team, alice) -> tuple[ApiKey, str]:
    return make_key(team, alice)


def test_it_accepts_a_bearer_header(alice_key):
    _, secret = alice_key
    response = Client().get("/api/v1/me", **bearer(secret))
    assert response.status_code == 200
    assert response.json()["team"]["slug"] == "acme"
    assert response.json()["role"] == "admin"
    assert response.json()["api_key"]["permission"] == "read_write"


def test_it_accepts_a_raw_authorization_header(alice_key):
    _, secret = alice_key
    response = Client().get("/api/v1/me", HTTP_AUTHORIZATION=secret)
    assert response.status_code == 200


def test_it_accepts_the_key_as_a_query_parameter(alice_key):
    _, secret = alice_key
    response = Client().get(f"/api/v1/me?api_key={secret}")
    assert response.status_code == 200


def test_it_refuses_an_unknown_key(db):
    response = Client().get("/api/v1/me", **bearer("rpa_not-a-real-key"))
    assert response.status_code == 401


def test_it_refuses_requests_without_credentials(db):
    assert Client().get("/api/v1/me").status_code in (401, 403)


def test_it_refuses_a_disabled_key_and_accepts_it_again_when_enabled(alice_key, alice):
    key, secret = alice_key
    services.set_api_key_enabled(key=key, actor=alice, enabled=False)
    assert Client().get("/api/v1/me", **bearer(secret)).status_code == 401
    services.set_api_key_enabled(key=key, actor=alice, enabled=True)
    assert Client().get("/api/v1/me", **bearer(secret)).status_code == 200


def test_it_refuses_a_revoked_key(alice_key, alice):
    key, secret = alice_key
    services.revoke_api_key(key=key, actor=alice)
    assert Client().get("/api/v1/me", **bearer(secret)).status_code == 401


def test_it_refuses_a_read_only_key_on_post_but_allows_get(team, alice):
    _, secret = make_key(team, alice, ApiKey.Permission.READ_ONLY)
    assert Client().get("/api/v1/api-keys", **bearer(secret)).status_code == 200
    response = Client().post("/api/v1/api-keys", {"name": "x"}, **bearer(secret))
    assert response.status_code == 403
    assert ApiKey.objects.count() == 1


def test_it_records_when_a_key_was_last_used(alice_key):
    key, secret = alice_key
    assert key.last_used_at is None
    Client().get("/api/v1/me", **bearer(secret))
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_it_stores_only_a_prefix_and_a_hash(alice_key):
    key, secret = alice_key
    stored = ApiKey.objects.values_list("prefix", "key_hash").get(pk=key.pk)
    assert secret not in stored
    assert secret.startswith(key.prefix)


def test_it_creates_lists_disables_and_deletes_keys_over_the_api(alice_key):
    _, secret = alice_key
    client = Client(**bearer(secret))
    created = client.post("/api/v1/api-keys", {"name": "CI", "permission": "read_only"})
    assert created.status_code == 201
    new_id, new_secret = created.json()["id"], created.json()["key"]
    assert new_secret.startswith(created.json()["prefix"])
    listed = client.get("/api/v1/api-keys").json()["results"]
    assert {row["id"] for row in listed} == {alice_key[0].public_id, new_id}
    assert all("key" not in row and "key_hash" not in row for row in listed)
    patched = client.patch(
        f"/api/v1/api-keys/{new_id}", {"is_enabled": False}, content_type="application/json"
    )
    assert patched.json()["is_enabled"] is False
    assert Client().get("/api/v1/me", **bearer(new_secret)).status_code == 401
    assert client.delete(f"/api/v1/api-keys/{new_id}").status_code == 204
    assert not ApiKey.objects.filter(public_id=new_id).exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"api_key.created", "api_key.disabled", "api_key.revoked"} <= actions


def test_it_acts_with_the_creators_current_role(team, alice, bob):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    _, secret = make_key(team, bob)
    assert Client().get("/api/v1/api-keys", **bearer(secret)).status_code == 200
    Membership.objects.filter(user=bob, team=team).update(role=Role.DEV)
    assert Client().get("/api/v1/api-keys", **bearer(secret)).status_code == 403
    assert Client().get("/api/v1/me", **bearer(secret)).json()["role"] == "dev"


def test_it_revokes_the_keys_of_a_creator_who_left_the_team(team, alice, bob):
    key, secret = make_key(team, bob)
    services.leave_team(membership=Membership.objects.get(user=bob, team=team))
    assert Client().get("/api/v1/me", **bearer(secret)).status_code == 401
    assert not ApiKey.objects.filter(pk=key.pk).exists()


def test_it_revokes_a_removed_members_keys_for_good(team, alice, bob):
    key, secret = make_key(team, bob)
    services.remove_member(membership=Membership.objects.get(user=bob, team=team), actor=alice)
    assert Client().get("/api/v1/me", **bearer(secret)).status_code == 401
    revoked = AuditEvent.objects.get(action="api_key.revoked", resource_id=key.public_id)
    assert revoked.actor == alice
    assert revoked.details["reason"] == "bob@example.com left the team"
    services.add_member(team=team, user=bob, role=Role.DEV, actor=alice)
    assert Client().get("/api/v1/me", **bearer(secret)).status_code == 401
    assert not ApiKey.objects.filter(pk=key.pk).exists()


def test_it_keeps_the_keys_of_others_when_a_member_is_removed(team, alice, bob):
    _, alices = make_key(team, alice)
    bob_elsewhere = bob.memberships.exclude(team=team).get().team
    _, bobs_own = services.create_api_key(
        team=bob_elsewhere, actor=bob, name="mine", permission="read_write"
    )
    services.remove_member(membership=Membership.objects.get(user=bob, team=team), actor=alice)
    assert Client().get("/api/v1/me", **bearer(alices)).status_code == 200
    assert Client().get("/api/v1/me", **bearer(bobs_own)).status_code == 200


def test_it_only_shows_the_keys_own_team(team, alice, charlie):
    make_key(charlie.memberships.get().team, charlie)
    _, secret = make_key(team, alice)
    listed = Client().get("/api/v1/api-keys", **bearer(secret)).json()["results"]
    assert len(listed) == 1


def test_it_hides_another_teams_key_with_404(team, alice, charlie):
    other, _ = make_key(charlie.memberships.get().team, charlie)
    _, secret = make_key(team, alice)
    response = Client().delete(f"/api/v1/api-keys/{other.public_id}", **bearer(secret))
    assert response.status_code == 404
    assert ApiKey.objects.filter(pk=other.pk).exists()


def test_it_uses_the_team_parameter_with_a_session(team, alice):
    response = login(alice).get("/api/v1/me?team=acme")
    assert response.json()["team"]["slug"] == "acme"


def test_it_gives_outsiders_404_with_a_session(team, charlie):
    assert login(charlie).get("/api/v1/api-keys?team=acme").status_code == 404


def test_it_gives_members_without_the_capability_403(team, bob):
    assert login(bob).get("/api/v1/api-keys?team=acme").status_code == 403


def test_it_falls_back_to_the_last_team_in_the_session(team, alice):
    client = login(alice)
    client.get("/t/acme/team/")
    assert client.get("/api/v1/me").json()["team"]["slug"] == "acme"

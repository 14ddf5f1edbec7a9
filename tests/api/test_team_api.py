"""SSH keys, registry credentials, members and invites over the REST API with real API keys on
PostgreSQL: every change goes through the console's services and is audited with the key,
secrets never come back, the console's team rules hold, other teams' rows are 404, roles
without the capability 403, read-only keys 403, and refused input changes nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from pods.connect.crypto import decrypt
from pods.connect.services import add_ssh_key, save_registry_credential
from pods.models import RegistryCredential, SshKey
from teams.models import AuditEvent, Invite, Membership, Role
from teams.services import accept_invite, create_invite, issue_pod_api_key
from tests.api.helpers import key_client
from tests.api.matrix import PUBLIC_KEY
from tests.conftest import make_user

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdZ0Wv7N0MGKdWW4cCaXg1Lc2kbcQzv9SPoXltBk7m0 other"


@pytest.fixture
def api(team, alice):
    client, key_id = key_client(team, alice)
    client.key_id = key_id
    return client


def events(action: str):
    return AuditEvent.objects.filter(action=action)


def assert_audited_with_key(action: str, api) -> AuditEvent:
    event = events(action).get()
    assert event.details["api_key"] == api.key_id and event.actor_label == "alice@example.com"
    return event


def client_with_role(team, role: str, permission: str = "read_write"):
    user = make_user(f"{role}-{permission}@example.com")
    Membership.objects.create(user=user, team=team, role=role)
    return key_client(team, user, permission)[0], user


# SSH keys ------------------------------------------------------------------------------------


def test_it_adds_lists_and_deletes_the_callers_ssh_keys(api, alice):
    response = api.post("/api/v1/ssh-keys/", {"public_key": PUBLIC_KEY}, format="json")
    assert response.status_code == 201, response.json()
    key = SshKey.objects.get(user=alice)
    assert response.json()["id"] == key.public_id and response.json()["name"] == "matrix"
    assert response.json()["fingerprint"] == key.fingerprint
    assert_audited_with_key("ssh_key.added", api)
    listed = api.get("/api/v1/ssh-keys/").json()
    assert listed["count"] == 1 and listed["results"][0]["public_key"] == key.public_key
    assert api.delete(f"/api/v1/ssh-keys/{key.public_id}/").status_code == 204
    assert not SshKey.objects.exists()
    assert_audited_with_key("ssh_key.deleted", api)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"public_key": "ssh-ed25519 not-base64"}, "public_key"), ({"name": "x"}, "public_key")],
)
def test_a_bad_ssh_key_names_the_field_and_adds_nothing(api, body, field):
    response = api.post("/api/v1/ssh-keys/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["errors"]
    assert not SshKey.objects.exists() and not events("ssh_key.added").exists()


def test_the_same_ssh_key_twice_is_refused(api, alice, team):
    add_ssh_key(actor=alice, team=team, name="", public_key=PUBLIC_KEY)
    response = api.post("/api/v1/ssh-keys/", {"public_key": PUBLIC_KEY}, format="json")
    assert response.status_code == 400 and "public_key" in response.json()["errors"]
    assert SshKey.objects.count() == 1


def test_another_persons_ssh_key_is_404_even_in_the_same_team(api, team, bob):
    key = add_ssh_key(actor=bob, team=team, name="", public_key=OTHER_KEY)
    assert api.get(f"/api/v1/ssh-keys/{key.public_id}/").status_code == 404
    assert api.delete(f"/api/v1/ssh-keys/{key.public_id}/").status_code == 404
    assert api.get("/api/v1/ssh-keys/").json()["count"] == 0
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_billing_members_and_pod_keys_have_no_ssh_keys(team):
    billing, _ = client_with_role(team, Role.BILLING)
    assert billing.get("/api/v1/ssh-keys/").status_code == 403
    _, secret = issue_pod_api_key(team=team, pod_public_id="podx")
    pod = APIClient()
    pod.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = pod.post("/api/v1/ssh-keys/", {"public_key": PUBLIC_KEY}, format="json")
    assert response.status_code == 403 and not SshKey.objects.exists()


# Registry credentials ------------------------------------------------------------------------

REGISTRY = {"name": "ghcr", "registry": "ghcr.io/acme", "username": "bot", "password": "s3cr3t"}


def test_it_creates_updates_and_deletes_registry_credentials_without_showing_the_secret(api, team):
    response = api.post("/api/v1/registry-credentials/", REGISTRY, format="json")
    assert response.status_code == 201, response.json()
    credential = RegistryCredential.objects.get(team=team)
    assert decrypt(credential.password_encrypted) == "s3cr3t"
    assert_audited_with_key("registry_credential.created", api)
    url = f"/api/v1/registry-credentials/{credential.public_id}/"
    response = api.put(url, {"username": "bot2", "password": "n3w"}, format="json")
    assert response.status_code == 200 and response.json()["username"] == "bot2"
    credential.refresh_from_db()
    assert decrypt(credential.password_encrypted) == "n3w"
    assert_audited_with_key("registry_credential.updated", api)
    answers = [api.get(url), api.get("/api/v1/registry-credentials/"), response]
    for answer in answers:
        assert "s3cr3t" not in answer.content.decode() and "n3w" not in answer.content.decode()
        assert "password" not in answer.content.decode()
    assert api.delete(url).status_code == 204
    assert not RegistryCredential.objects.exists()
    assert_audited_with_key("registry_credential.deleted", api)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"registry": "not a host!"}, "registry"),
        ({"password": ""}, "password"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_registry_input_names_the_field_and_saves_nothing(api, change, field):
    response = api.post("/api/v1/registry-credentials/", {**REGISTRY, **change}, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.json()
    assert not RegistryCredential.objects.exists()


def test_an_update_without_a_password_changes_nothing(api, team, alice):
    credential = save_registry_credential(actor=alice, team=team, **REGISTRY)
    url = f"/api/v1/registry-credentials/{credential.public_id}/"
    response = api.put(url, {"username": "eve"}, format="json")
    assert response.status_code == 400 and "password" in response.json()["errors"]
    credential.refresh_from_db()
    assert credential.username == "bot" and not events("registry_credential.updated").exists()


def test_registry_credentials_need_deploy_and_stay_in_their_team(team, alice, charlie):
    credential = save_registry_credential(actor=alice, team=team, **REGISTRY)
    url = f"/api/v1/registry-credentials/{credential.public_id}/"
    basic, _ = client_with_role(team, Role.BASIC)
    assert basic.get("/api/v1/registry-credentials/").status_code == 403
    outsider, _ = key_client(charlie.memberships.get().team, charlie)
    assert outsider.get(url).status_code == 404
    assert outsider.delete(url).status_code == 404
    read_only, _ = client_with_role(team, Role.DEV, "read_only")
    assert read_only.get(url).status_code == 200
    assert read_only.delete(url).status_code == 403
    assert RegistryCredential.objects.filter(pk=credential.pk).exists()


# Members -------------------------------------------------------------------------------------


def test_every_member_lists_members_and_filters_by_role(team, bob):
    basic, _ = client_with_role(team, Role.BASIC)
    body = basic.get("/api/v1/members/").json()
    assert [m["email"] for m in body["results"]] == [
        "alice@example.com",
        "basic-read_write@example.com",
        "bob@example.com",
    ]
    dev = basic.get("/api/v1/members/", {"role": "dev"}).json()["results"]
    assert [m["email"] for m in dev] == ["bob@example.com"]
    assert basic.get("/api/v1/members/", {"role": "king"}).status_code == 400


def test_an_admin_changes_a_role_and_removes_a_member(api, team, bob):
    membership = Membership.objects.get(team=team, user=bob)
    url = f"/api/v1/members/{membership.public_id}/"
    response = api.patch(url, {"role": "billing"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "billing"
    assert_audited_with_key("member.role_changed", api)
    assert api.delete(url).status_code == 204
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert_audited_with_key("member.removed", api)


def test_the_last_admin_keeps_the_role_and_nobody_removes_themselves(api, team, alice):
    own = Membership.objects.get(team=team, user=alice)
    response = api.patch(f"/api/v1/members/{own.public_id}/", {"role": "dev"}, format="json")
    assert response.status_code == 400 and "admin" in response.json()["message"]
    assert api.delete(f"/api/v1/members/{own.public_id}/").status_code == 400
    own.refresh_from_db()
    assert own.role == Role.ADMIN and not events("member.role_changed").exists()


def test_a_bad_role_is_a_field_error(api, team, bob):
    membership = Membership.objects.get(team=team, user=bob)
    response = api.patch(f"/api/v1/members/{membership.public_id}/", {"role": "x"}, format="json")
    assert response.status_code == 400 and "role" in response.json()["errors"]
    membership.refresh_from_db()
    assert membership.role == Role.DEV


def test_only_admins_change_members_and_outsiders_see_none(team, bob, charlie):
    membership = Membership.objects.get(team=team, user=bob)
    url = f"/api/v1/members/{membership.public_id}/"
    dev = key_client(team, bob)[0]
    assert dev.patch(url, {"role": "admin"}, format="json").status_code == 403
    outsider, _ = key_client(charlie.memberships.get().team, charlie)
    assert outsider.get(url).status_code == 404
    assert outsider.delete(url).status_code == 404
    membership.refresh_from_db()
    assert membership.role == Role.DEV


# Invites -------------------------------------------------------------------------------------


def test_an_admin_creates_an_invite_whose_link_is_shown_once(api, team, charlie):
    response = api.post("/api/v1/invites/", {"role": "dev"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    invite = Invite.objects.get(public_id=body["id"])
    assert body["link"].endswith(invite.get_absolute_url()) and body["role"] == "dev"
    assert body["status"] == "pending" and invite.expires_at > timezone.now()
    assert_audited_with_key("invite.created", api)
    listed = api.get("/api/v1/invites/").content.decode()
    assert invite.public_id in listed and invite.token not in listed
    assert invite.token not in api.get(f"/api/v1/invites/{invite.public_id}/").content.decode()
    accept_invite(token=invite.token, user=charlie)
    assert Membership.objects.get(team=team, user=charlie).role == Role.DEV


def test_revoking_an_invite_kills_the_link_and_it_leaves_the_pending_list(api, team, alice):
    invite = create_invite(team=team, actor=alice, role=Role.BASIC)
    assert api.delete(f"/api/v1/invites/{invite.public_id}/").status_code == 204
    invite.refresh_from_db()
    assert invite.status == "revoked"
    assert_audited_with_key("invite.revoked", api)
    assert api.get("/api/v1/invites/").json()["count"] == 0
    again = api.delete(f"/api/v1/invites/{invite.public_id}/")
    assert again.status_code == 400 and "revoked" in again.json()["message"]


def test_invites_refuse_a_bad_role_and_personal_accounts(alice):
    api = key_client(alice.memberships.get(team__is_personal=True).team, alice)[0]
    response = api.post("/api/v1/invites/", {"role": "dev"}, format="json")
    assert response.status_code == 400 and "Convert" in response.json()["message"]
    assert api.post("/api/v1/invites/", {"role": "owner"}, format="json").status_code == 400
    assert not Invite.objects.exists()


def test_invites_are_for_admins_of_the_team_only(team, alice, charlie):
    invite = create_invite(team=team, actor=alice, role=Role.BASIC)
    dev, _ = client_with_role(team, Role.DEV)
    assert dev.get("/api/v1/invites/").status_code == 403
    assert dev.post("/api/v1/invites/", {"role": "admin"}, format="json").status_code == 403
    outsider, _ = key_client(charlie.memberships.get().team, charlie)
    assert outsider.delete(f"/api/v1/invites/{invite.public_id}/").status_code == 404
    read_only, _ = client_with_role(team, Role.ADMIN, "read_only")
    assert read_only.post("/api/v1/invites/", {"role": "dev"}, format="json").status_code == 403
    invite.refresh_from_db()
    assert invite.status == "pending" and Invite.objects.count() == 1


def test_an_idempotent_invite_create_makes_one_invite(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "invite-1"}
    first = api.post("/api/v1/invites/", {"role": "dev"}, format="json", **headers)
    second = api.post("/api/v1/invites/", {"role": "dev"}, format="json", **headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and Invite.objects.count() == 1


def test_the_lists_run_the_same_queries_for_2_rows_as_for_12(api, team, alice):
    def grow(total: int) -> None:
        while Membership.objects.filter(team=team).count() < total:
            n = Membership.objects.count()
            user = make_user(f"m{n}@example.com")
            Membership.objects.create(team=team, user=user, role=Role.DEV)
            create_invite(team=team, actor=user, role=Role.BASIC)
            save_registry_credential(actor=user, team=team, **{**REGISTRY, "name": f"r{n}"})

    counts = []
    for total in (2, 12):
        grow(total)
        api.get("/api/v1/members/")  # warm: the key's last_used_at write happens once
        with CaptureQueriesContext(connection) as queries:
            for url in ("/api/v1/members/", "/api/v1/invites/", "/api/v1/registry-credentials/"):
                assert api.get(url).json()["count"] >= total - 1
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 12, counts  # 4 per list: key, membership, count, rows

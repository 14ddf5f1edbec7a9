"""The admin site for staff: every teams screen loads; audit rows and key secrets stay safe."""

import pytest
from django.test import Client
from django.urls import reverse

from teams import services
from teams.models import ApiKey, AuditEvent, Invite, Membership, Role, User


@pytest.fixture
def staff(db) -> Client:
    admin_user = User.objects.create_superuser(email="staff@example.com", password="x")
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def objects(team, alice, bob):
    key, secret = services.create_api_key(
        team=team, actor=alice, name="CI", permission="read_write"
    )
    invite = services.create_invite(team=team, actor=alice, role=Role.DEV)
    return {"key": key, "secret": secret, "invite": invite}


MODELS = ["user", "team", "membership", "invite", "apikey", "auditevent"]


@pytest.mark.parametrize("model", MODELS)
def test_it_loads_every_changelist_and_search(staff, objects, model):
    url = reverse(f"admin:teams_{model}_changelist")
    assert staff.get(url).status_code == 200
    assert staff.get(url, {"q": "acme"}).status_code == 200


def test_it_loads_change_pages(staff, objects, team, alice):
    pages = [
        ("user", alice.pk),
        ("team", team.pk),
        ("membership", Membership.objects.get(user=alice, team=team).pk),
        ("invite", objects["invite"].pk),
        ("apikey", objects["key"].pk),
        ("auditevent", AuditEvent.objects.first().pk),
    ]
    for model, pk in pages:
        response = staff.get(reverse(f"admin:teams_{model}_change", args=[pk]))
        assert response.status_code == 200, model


def test_it_adds_users_by_email_with_a_personal_account(staff):
    response = staff.post(
        reverse("admin:teams_user_add"),
        {
            "email": "new@example.com",
            "usable_password": "true",
            "password1": "Zx9!long-pass",
            "password2": "Zx9!long-pass",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.memberships.get().team.is_personal


def test_it_never_shows_an_api_key_secret_or_hash(staff, objects):
    key = objects["key"]
    page = staff.get(reverse("admin:teams_apikey_change", args=[key.pk])).content.decode()
    assert key.prefix in page
    assert objects["secret"] not in page
    assert key.key_hash not in page


def test_it_keeps_audit_events_read_only(staff, objects):
    event = AuditEvent.objects.first()
    assert staff.get(reverse("admin:teams_auditevent_add")).status_code == 403
    assert staff.get(reverse("admin:teams_auditevent_delete", args=[event.pk])).status_code == 403
    response = staff.post(
        reverse("admin:teams_auditevent_change", args=[event.pk]), {"action": "tampered"}
    )
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.action != "tampered"


def test_it_disables_keys_through_the_audited_service(staff, objects):
    key = objects["key"]
    staff.post(
        reverse("admin:teams_apikey_changelist"),
        {"action": "disable", "_selected_action": [key.pk]},
    )
    assert not ApiKey.objects.get(pk=key.pk).is_enabled
    event = AuditEvent.objects.get(action="api_key.disabled")
    assert event.actor.email == "staff@example.com"


def test_it_keeps_the_last_admin_rule_in_the_admin(staff, team, alice):
    membership = Membership.objects.get(user=alice, team=team)
    response = staff.post(
        reverse("admin:teams_membership_change", args=[membership.pk]), {"role": "dev"}
    )
    assert response.status_code == 200
    assert b"A team needs at least one admin" in response.content
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_it_revokes_invites_from_the_admin(staff, objects):
    invite = objects["invite"]
    staff.post(
        reverse("admin:teams_invite_changelist"),
        {"action": "revoke", "_selected_action": [invite.pk]},
    )
    assert Invite.objects.get(pk=invite.pk).status == "revoked"

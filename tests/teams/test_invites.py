"""Invite links: created by admins with a role, shown under Pending invites, single use,
expiring, revocable, and never changing the role of someone already in the team."""

from datetime import timedelta

import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from teams import services
from teams.models import AuditEvent, Invite, Membership, Role
from tests.conftest import login, make_user


def invite_for(team, alice, role=Role.DEV) -> Invite:
    return services.create_invite(team=team, actor=alice, role=role)


def test_it_creates_an_invite_link_under_pending_invites(team, alice):
    client = login(alice)
    response = client.post(reverse("create_invite", args=["acme"]), {"role": "billing"})
    assert response.status_code == 302
    invite = Invite.objects.get()
    assert (invite.role, invite.created_by) == (Role.BILLING, alice)
    page = client.get(reverse("members", args=["acme"])).content.decode()
    assert f"http://testserver/invite/{invite.token}/" in page
    assert f'data-copy="#invite-link-{invite.public_id}"' in page
    assert AuditEvent.objects.filter(action="invite.created", resource_id=invite.public_id)


def test_it_expires_invites_after_the_configured_days(team, alice, settings):
    settings.INVITE_VALID_DAYS = 3
    with time_machine.travel("2030-05-01 10:00:00", tick=False):
        invite = invite_for(team, alice)
    assert invite.expires_at == timezone.make_aware(timezone.datetime(2030, 5, 4, 10, 0))


def test_it_shows_the_team_and_role_to_anonymous_visitors(team, alice):
    invite = invite_for(team, alice)
    response = Client().get(invite.get_absolute_url())
    assert response.status_code == 200
    assert b"Acme" in response.content
    assert b"Dev" in response.content
    next_param = f"next=%2Finvite%2F{invite.token}%2F".encode()
    assert b"/accounts/signup/?" + next_param in response.content
    assert b"/accounts/login/?" + next_param in response.content


def test_it_lets_a_signed_in_user_join(team, alice, charlie):
    invite = invite_for(team, alice)
    client = login(charlie)
    assert b"Join team" in client.get(invite.get_absolute_url()).content
    response = client.post(invite.get_absolute_url(), follow=True)
    assert b"Welcome to Acme! You joined as Dev." in response.content
    assert Membership.objects.get(user=charlie, team=team).role == Role.DEV
    invite.refresh_from_db()
    assert invite.accepted_by == charlie
    assert AuditEvent.objects.filter(action="invite.accepted", actor=charlie, team=team)


def test_it_works_only_once(team, alice, charlie):
    invite = invite_for(team, alice)
    login(charlie).post(invite.get_absolute_url())
    dana = make_user("dana@example.com")
    response = login(dana).post(invite.get_absolute_url())
    assert response.status_code == 410
    assert b"already used" in response.content
    assert not Membership.objects.filter(user=dana, team=team).exists()


def test_it_refuses_expired_links(team, alice, charlie, settings):
    invite = invite_for(team, alice)
    with time_machine.travel(
        timezone.now() + timedelta(days=settings.INVITE_VALID_DAYS, seconds=1)
    ):
        response = login(charlie).post(invite.get_absolute_url())
    assert response.status_code == 410
    assert b"This invite link has expired" in response.content
    assert not Membership.objects.filter(user=charlie, team=team).exists()


def test_it_revokes_an_invite(team, alice, charlie):
    invite = invite_for(team, alice)
    response = login(alice).post(
        reverse("revoke_invite", args=["acme", invite.public_id]), follow=True
    )
    assert b"Invite revoked" in response.content
    assert b"No pending invites" in response.content
    assert AuditEvent.objects.filter(action="invite.revoked", resource_id=invite.public_id)
    page = login(charlie).get(invite.get_absolute_url())
    assert page.status_code == 410
    assert b"revoked" in page.content


def test_it_cannot_revoke_an_accepted_invite(team, alice, charlie):
    invite = invite_for(team, alice)
    services.accept_invite(token=invite.token, user=charlie)
    response = login(alice).post(
        reverse("revoke_invite", args=["acme", invite.public_id]), follow=True
    )
    assert b"This invite is already accepted." in response.content


def test_it_does_not_change_the_role_of_an_existing_member(team, alice, bob):
    invite = invite_for(team, alice, role=Role.ADMIN)
    client = login(bob)
    assert b"already a member of Acme as Dev" in client.get(invite.get_absolute_url()).content
    response = client.post(invite.get_absolute_url(), follow=True)
    assert b"An invite cannot change your role" in response.content
    assert Membership.objects.get(user=bob, team=team).role == Role.DEV
    invite.refresh_from_db()
    assert invite.is_usable


def test_it_answers_unknown_tokens_with_a_clear_404(db):
    response = Client().get("/invite/not-a-token/")
    assert response.status_code == 404
    assert b"This invite link is not valid" in response.content


def test_it_keeps_invites_to_their_team(team, alice, charlie):
    other = services.convert_to_team(
        team=Membership.objects.get(user=charlie).team, actor=charlie, name="Other"
    )
    invite = invite_for(other, charlie)
    response = login(alice).post(reverse("revoke_invite", args=["acme", invite.public_id]))
    assert response.status_code == 404

"""The Team page: members and roles, removing, leaving, and the last-admin rule."""

import pytest
from django.urls import reverse

from teams import services
from teams.models import AuditEvent, Membership, Role
from tests.conftest import login, make_user


def url(name: str, *args) -> str:
    return reverse(name, args=["acme", *args])


def membership(user, team) -> Membership:
    return Membership.objects.get(user=user, team=team)


def test_it_lists_members_with_their_roles(team, alice, bob):
    response = login(bob).get(url("members"))
    assert response.status_code == 200
    assert b"alice@example.com" in response.content
    assert b"bob@example.com" in response.content
    assert b"Invite new member" not in response.content  # bob is not an admin


def test_it_changes_a_role_and_audits_it(team, alice, bob):
    response = login(alice).post(
        url("change_role", membership(bob, team).public_id), {"role": "billing"}, follow=True
    )
    assert b"bob@example.com is now Billing." in response.content
    assert membership(bob, team).role == Role.BILLING
    event = AuditEvent.objects.get(action="member.role_changed")
    assert (event.actor, event.team, event.resource_id) == (alice, team, "bob@example.com")
    assert event.details == {"old_role": "dev", "role": "billing"}


def test_it_refuses_to_demote_the_last_admin(team, alice, bob):
    response = login(alice).post(
        url("change_role", membership(alice, team).public_id), {"role": "dev"}, follow=True
    )
    assert b"A team needs at least one admin" in response.content
    assert membership(alice, team).role == Role.ADMIN


def test_it_lets_an_admin_step_down_when_another_admin_exists(team, alice, bob):
    services.change_role(membership=membership(bob, team), actor=alice, role=Role.ADMIN)
    login(alice).post(url("change_role", membership(alice, team).public_id), {"role": "dev"})
    assert membership(alice, team).role == Role.DEV


def test_it_removes_a_member(team, alice, bob):
    response = login(alice).post(url("remove_member", membership(bob, team).public_id), follow=True)
    assert b"bob@example.com was removed from Acme." in response.content
    assert not Membership.objects.filter(user=bob, team=team).exists()
    assert AuditEvent.objects.filter(action="member.removed", resource_id=bob.email).exists()


def test_it_refuses_to_remove_the_last_admin(team, alice):
    with pytest.raises(services.TeamError, match="at least one admin"):
        services.remove_member(membership=membership(alice, team), actor=alice)


def test_it_points_admins_to_leave_instead_of_removing_themselves(team, alice, bob):
    services.change_role(membership=membership(bob, team), actor=alice, role=Role.ADMIN)
    response = login(alice).post(
        url("remove_member", membership(alice, team).public_id), follow=True
    )
    assert "use “Leave team”".encode() in response.content
    assert Membership.objects.filter(user=alice, team=team).exists()


def test_it_lets_a_member_leave(team, bob):
    client = login(bob)
    response = client.post(url("leave_team"))
    assert response.status_code == 302
    assert not Membership.objects.filter(user=bob, team=team).exists()
    assert AuditEvent.objects.filter(action="member.left", actor=bob).exists()
    assert client.get(url("members")).status_code == 404


def test_it_refuses_to_let_the_last_admin_leave(team, alice, bob):
    response = login(alice).post(url("leave_team"), follow=True)
    assert b"A team needs at least one admin" in response.content
    assert Membership.objects.filter(user=alice, team=team).exists()


def test_it_refuses_to_leave_a_personal_account(alice):
    personal = Membership.objects.get(user=alice, team__is_personal=True)
    with pytest.raises(services.TeamError, match="personal account"):
        services.leave_team(membership=personal)


def test_it_hides_other_teams_members_from_role_changes(team, alice, charlie):
    other = Membership.objects.get(user=charlie)
    response = login(alice).post(url("change_role", other.public_id), {"role": "basic"})
    assert response.status_code == 404
    assert Membership.objects.get(pk=other.pk).role == Role.ADMIN


def test_it_shows_the_members_page_in_a_bounded_number_of_queries(
    team, alice, django_assert_max_num_queries
):
    for n in range(15):
        member = make_user(f"member{n}@example.com")
        Membership.objects.create(user=member, team=team, role=Role.DEV)
        services.create_invite(team=team, actor=alice, role=Role.BASIC)
    client = login(alice)
    with django_assert_max_num_queries(12):
        response = client.get(url("members"))
    assert response.content.count(b"data-member=") == 16


def test_it_explains_a_refusal_in_the_console_layout(team, bob):
    response = login(bob).get(reverse("audit_log", args=["acme"]))
    assert response.status_code == 403
    assert b"Your role (Dev) cannot do this." in response.content
    assert b"console-sidebar" in response.content


def test_it_shows_outsiders_a_plain_not_found_page(team, charlie):
    response = login(charlie).get(url("members"))
    assert response.status_code == 404
    assert b"belongs to a team you are not a member of" in response.content
    assert b"Acme" not in response.content

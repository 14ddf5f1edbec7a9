"""Converting a personal account into a team: a name, a confirmation, irreversible, audited."""

from django.urls import reverse

from teams import services
from teams.models import AuditEvent, Team
from tests.conftest import login


def personal(user) -> Team:
    return Team.objects.get(memberships__user=user, is_personal=True)


def test_it_converts_a_personal_account_into_a_team(charlie):
    team = personal(charlie)
    response = login(charlie).post(
        reverse("convert_team", args=[team.slug]),
        {"name": "  Charlie   Labs ", "confirm": "on"},
        follow=True,
    )
    assert b"Charlie Labs is now a team account." in response.content
    team.refresh_from_db()
    assert (team.name, team.is_personal) == ("Charlie Labs", False)
    assert team.converted_at is not None
    event = AuditEvent.objects.get(action="team.converted")
    assert event.details == {"old_name": "charlie's account", "name": "Charlie Labs"}
    assert event.actor == charlie


def test_it_requires_the_confirmation_box(charlie):
    team = personal(charlie)
    response = login(charlie).post(reverse("convert_team", args=[team.slug]), {"name": "Labs"})
    assert response.status_code == 200
    assert b"Tick the box to confirm" in response.content
    team.refresh_from_db()
    assert team.is_personal


def test_it_requires_a_name(charlie):
    team = personal(charlie)
    response = login(charlie).post(
        reverse("convert_team", args=[team.slug]), {"name": " ", "confirm": "on"}
    )
    assert b"This field is required" in response.content
    assert Team.objects.get(pk=team.pk).is_personal


def test_it_cannot_convert_twice(charlie):
    team = personal(charlie)
    services.convert_to_team(team=team, actor=charlie, name="Labs")
    response = login(charlie).get(reverse("convert_team", args=[team.slug]), follow=True)
    assert b"Labs is already a team account." in response.content
    assert AuditEvent.objects.filter(action="team.converted").count() == 1


def test_it_offers_the_conversion_on_the_team_page_and_dashboard(charlie):
    team = personal(charlie)
    client = login(charlie)
    convert_url = reverse("convert_team", args=[team.slug]).encode()
    assert convert_url in client.get(reverse("members", args=[team.slug])).content
    assert convert_url in client.get(reverse("dashboard", args=[team.slug])).content


def test_it_does_not_invite_into_a_personal_account(charlie):
    team = personal(charlie)
    response = login(charlie).post(
        reverse("create_invite", args=[team.slug]), {"role": "dev"}, follow=True
    )
    assert b"Convert your personal account into a team" in response.content
    assert not team.invites.exists()

"""Every write to accounts and teams: one atomic transaction and one audit event each."""

from django.db import transaction
from django.utils.text import slugify

from teams import audit
from teams.models import Membership, Role, Team, new_public_id


def unique_team_slug(name: str) -> str:
    base = slugify(name)[:30] or "team"
    slug = base
    while Team.objects.filter(slug=slug).exists():
        slug = f"{base}-{new_public_id(5)}"
    return slug


@transaction.atomic
def create_personal_team(*, user) -> Team:
    """Every user gets a personal account at signup; they are its admin."""
    label = user.email.split("@")[0]
    team = Team.objects.create(
        name=f"{label}'s account", slug=unique_team_slug(label), is_personal=True
    )
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    audit.record(
        actor=user, team=team, action="team.created", resource_type="team", resource_id=team.slug
    )
    return team

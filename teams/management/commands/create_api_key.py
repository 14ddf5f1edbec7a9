"""Print a new API key for operators' scripts:

    python manage.py create_api_key --email ops@example.com [--team SLUG] [--read-only]

The key belongs to the team (the user's personal account when --team is not given) and acts with
the user's role there. Only the prefix and a hash are stored; the secret is printed once."""

from django.core.management.base import BaseCommand, CommandError

from teams import services
from teams.models import ApiKey, Membership, User


class Command(BaseCommand):
    help = "Create an API key for a user in one of their teams and print it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True, help="The user the key acts as.")
        parser.add_argument("--team", help="Team slug (default: the user's personal account).")
        parser.add_argument("--read-only", action="store_true", help="Refuse unsafe methods.")
        parser.add_argument("--name", default="Created with manage.py", help="A label.")

    def _membership(self, email: str, slug: str | None) -> Membership:
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with e-mail {email}.")
        memberships = Membership.objects.select_related("team").filter(user=user)
        membership = (
            memberships.filter(team__slug=slug).first()
            if slug
            else memberships.filter(team__is_personal=True).first()
        )
        if membership is None:
            raise CommandError(f"{email} is not a member of team {slug or '(personal)'}.")
        return membership

    def handle(self, *args, email: str, team: str | None, read_only: bool, name: str, **options):
        membership = self._membership(email, team)
        permission = ApiKey.Permission.READ_ONLY if read_only else ApiKey.Permission.READ_WRITE
        key, secret = services.create_api_key(
            team=membership.team, actor=membership.user, name=name, permission=permission
        )
        self.stderr.write(
            f"Created {key.get_permission_display()} key {key.prefix}… for team "
            f"{membership.team.slug} (acting as {membership.user.email}, {membership.role})."
        )
        self.stdout.write(secret)

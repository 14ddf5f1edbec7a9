from django.conf import settings

from teams.models import User
from teams.services import create_personal_team


def run(stdout) -> None:
    """The demo login, printed so a newcomer can sign in straight away."""
    email, password = settings.DEMO_USER_EMAIL, settings.DEMO_USER_PASSWORD
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(
            email=email, password=password, is_staff=True, is_superuser=True, name="Demo User"
        )
        create_personal_team(user=user)
        from allauth.account.models import EmailAddress

        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    stdout.write(f"Demo login: {email} / {password} (also a staff user for /admin/)")

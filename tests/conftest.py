"""The cast: alice is admin of her team "acme", bob is a member of acme (role set per test),
charlie is an outsider with his own personal account."""

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.test import Client
from django.utils import timezone

from teams.models import Membership, Role, Team, User
from teams.services import create_personal_team

PASSWORD = "correct-horse-battery"


def totp_code(secret: str, steps_ago: int = 0) -> str:
    """The authenticator app's code for `secret` now (or `steps_ago` 30 s steps before)."""
    step = int(timezone.now().timestamp()) // 30 - steps_ago
    return format_hotp_value(hotp_value(secret, step))


def make_user(email: str) -> User:
    user = User.objects.create_user(email=email, password=PASSWORD)
    create_personal_team(user=user)
    return user


@pytest.fixture
def alice(db) -> User:
    return make_user("alice@example.com")


@pytest.fixture
def team(alice) -> Team:
    team = Team.objects.create(name="Acme", slug="acme", is_personal=False)
    Membership.objects.create(user=alice, team=team, role=Role.ADMIN)
    return team


@pytest.fixture
def bob(team) -> User:
    user = make_user("bob@example.com")
    Membership.objects.create(user=user, team=team, role=Role.DEV)
    return user


@pytest.fixture
def charlie(db) -> User:
    return make_user("charlie@example.com")


@pytest.fixture
def member_with_role(team):
    """member_with_role("billing") -> a logged-in Client for a new member of acme with that role."""

    def make(role: str) -> Client:
        user = make_user(f"{role}-member@example.com")
        Membership.objects.create(user=user, team=team, role=role)
        client = Client()
        client.force_login(user)
        return client

    return make


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(scope="session")
def asgi_pool(django_db_setup):
    """For tests sending /v2/ requests to the in-process application: serverless.asgi runs them
    in a thread pool whose threads keep their own connections, closed here before the test
    database is dropped."""
    yield
    from serverless import asgi

    asgi.close_connections()


@pytest.fixture
def eager_tasks():
    """Celery tasks run inline where they are queued, as a worker would run them."""
    from console.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous

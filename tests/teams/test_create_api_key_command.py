import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from teams.models import ApiKey


def run(*args) -> str:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_it_prints_a_working_key_for_a_team(team, alice):
    secret = run("--email", "alice@example.com", "--team", "acme")
    response = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.json()["team"]["slug"] == "acme"
    assert ApiKey.objects.get().created_by == alice


def test_it_defaults_to_the_personal_account(charlie):
    run("--email", "charlie@example.com")
    assert ApiKey.objects.get().team.is_personal


def test_it_creates_read_only_keys(team, alice):
    secret = run("--email", "alice@example.com", "--team", "acme", "--read-only")
    assert ApiKey.objects.get().is_read_only
    response = Client().post("/api/v1/api-keys", {"name": "x"}, HTTP_AUTHORIZATION=secret)
    assert response.status_code == 403


def test_it_refuses_teams_the_user_is_not_in(team, charlie):
    with pytest.raises(CommandError, match="not a member"):
        run("--email", "charlie@example.com", "--team", "acme")


def test_it_refuses_unknown_users(db):
    with pytest.raises(CommandError, match="No user"):
        run("--email", "nobody@example.com")

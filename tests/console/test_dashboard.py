"""The team dashboard: a checklist ticked from real state, running pods with their cost, and
spend (today, and per day as a chart) for billing roles only."""

import re
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.urls import reverse

from billing.models import LedgerEntry
from billing.services import post_entry
from pods.models import Pod, SshKey
from teams.models import ApiKey, Invite, Role
from tests.conftest import login
from tests.pods.factories import catalogue, fund, stopped_pod


@pytest.fixture
def parts(db):
    return catalogue()


def dashboard(client, team, **params) -> str:
    page = client.get(reverse("dashboard", args=[team.slug]), params)
    assert page.status_code == 200
    return page.content.decode()


def steps(html: str) -> dict[str, bool]:
    return {
        key: done == "true"
        for key, done in re.findall(r'data-step="([a-z_]+)" data-done="(true|false)"', html)
    }


def charge(team, amount: str, key: str) -> None:
    post_entry(
        team=team,
        amount=Decimal(amount),
        kind=LedgerEntry.Kind.USAGE_COMPUTE,
        idempotency_key=key,
        description="A40 pod",
    )


def test_it_starts_a_new_admin_with_every_step_undone_and_a_next_step(alice, team):
    html = dashboard(login(alice), team)
    assert steps(html) == {
        "verify_email": False,
        "add_credit": False,
        "ssh_key": False,
        "deploy": False,
        "invite": False,
        "api_key": False,
        "two_factor": False,
    }
    assert 'data-testid="next-step"' in html and "Next: Verify your e-mail." in html


def test_it_ticks_steps_from_what_the_team_has_done(parts, alice, team):
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    fund(team, "25")
    stopped_pod(team, parts["machine"], status=Pod.Status.TERMINATED)  # any pod, ever
    SshKey.objects.create(user=alice, name="laptop", key_type="ssh-ed25519", public_key="x")
    Invite.objects.create(team=team, role=Role.DEV, created_by=alice)
    done = steps(dashboard(login(alice), team))
    assert done == {**done, "verify_email": True, "add_credit": True, "ssh_key": True}
    assert done["deploy"] and done["invite"]
    assert not done["api_key"] and not done["two_factor"]


def test_a_paid_top_up_counts_as_credit_even_once_it_is_spent(alice, team):
    post_entry(
        team=team,
        amount=Decimal("10"),
        kind=LedgerEntry.Kind.TOP_UP,
        idempotency_key="pi_test",
        description="Top-up",
    )
    charge(team, "-10", "usage-all")
    assert steps(dashboard(login(alice), team))["add_credit"]


def test_a_pods_own_api_key_is_not_the_api_key_step(alice, team):
    ApiKey.objects.create(
        team=team, name="pod key", prefix="rp_x", key_hash="a" * 64, pod_public_id="p1"
    )
    assert not steps(dashboard(login(alice), team))["api_key"]
    ApiKey.objects.create(
        team=team, name="mine", prefix="rp_y", key_hash="b" * 64, created_by=alice
    )
    assert steps(dashboard(login(alice), team))["api_key"]


def test_it_hides_the_checklist_once_every_step_is_done(team, member_with_role):
    client = member_with_role(Role.BASIC)
    basic = team.memberships.get(role=Role.BASIC).user
    assert 'data-testid="getting-started"' in dashboard(client, team)
    EmailAddress.objects.create(user=basic, email=basic.email, verified=True, primary=True)
    SshKey.objects.create(user=basic, name="laptop", key_type="ssh-ed25519", public_key="x")
    Authenticator.objects.create(user=basic, type=Authenticator.Type.TOTP, data={})
    html = dashboard(client, team)
    assert 'data-testid="getting-started"' not in html and 'data-testid="next-step"' not in html


def test_each_role_sees_only_the_steps_it_can_take(team, member_with_role):
    assert set(steps(dashboard(member_with_role(Role.BILLING), team))) == {
        "verify_email",
        "add_credit",
        "two_factor",
    }
    assert set(steps(dashboard(member_with_role(Role.DEV), team))) == {
        "verify_email",
        "ssh_key",
        "deploy",
        "two_factor",
    }
    assert set(steps(dashboard(member_with_role(Role.BASIC), team))) == {
        "verify_email",
        "ssh_key",
        "two_factor",
    }


def test_it_lists_running_pods_with_their_cost_per_hour(parts, alice, team):
    long_name = "n" * 100
    running = stopped_pod(
        team, parts["machine"], name=long_name, status=Pod.Status.RUNNING, volume_gb=0,
        container_disk_gb=0,
    )  # fmt: skip
    stopped_pod(team, parts["rtx_machine"], name="parked")
    html = dashboard(login(alice), team)
    assert f'data-pod="{running.public_id}"' in html
    assert f'title="{long_name}"' in html and "text-truncate" in html
    assert "$0.79/h" in html  # one secure A40, no storage
    assert "parked" not in html


def test_a_billing_member_sees_spend_today_and_a_chart_but_no_pods(parts, team, member_with_role):
    charge(team, "-1.25", "usage-today-1")
    charge(team, "-0.50", "usage-today-2")
    html = dashboard(member_with_role(Role.BILLING), team)
    assert re.search(r'data-testid="spend-today">\$1\.75<', html)
    assert html.count("<rect ") == 7
    assert "$1.75 in the last 7 days" in html
    assert 'data-testid="running-pods"' not in html
    assert dashboard(member_with_role(Role.ADMIN), team, spend="30").count("<rect ") == 30


def test_a_dev_sees_pods_but_no_money_of_the_team(parts, team, member_with_role):
    fund(team, "100")
    charge(team, "-2", "usage-dev")
    html = dashboard(member_with_role(Role.DEV), team)
    assert 'data-testid="running-pods"' in html
    assert 'data-testid="spend"' not in html
    assert "$98.00" not in html and "Balance" not in html


def test_it_ignores_a_spend_window_it_does_not_offer(team, member_with_role):
    assert dashboard(member_with_role(Role.BILLING), team, spend="100000").count("<rect ") == 7


def test_its_query_count_does_not_grow_with_pods(parts, alice, team, django_assert_max_num_queries):
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    client = login(alice)
    stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    with django_assert_max_num_queries(30) as one:
        dashboard(client, team)
    for _ in range(5):
        stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=0)
    with django_assert_max_num_queries(len(one.captured_queries)):
        dashboard(client, team)


def test_an_outsider_gets_a_404(team, charlie):
    assert login(charlie).get(reverse("dashboard", args=[team.slug])).status_code == 404

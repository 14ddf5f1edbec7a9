"""Referral tests: programs as SPEC.md has them (open-ended here), commission processing that
reads up to the newest ledger entry at once (nothing else writes the ledger in a test), and
helpers that build real usage with pods.metering."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from billing.services import post_entry
from pods.models import CloudType, DataCenter, GpuType, Machine, Pod, PodTemplate
from referrals.models import Program
from referrals.services import attribute_signup
from teams.models import Team, User
from teams.services import create_personal_team
from tests.pods.factories import stopped_pod

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_commit_lag(settings):
    settings.REFERRAL_COMMIT_LAG_SECONDS = 0


@pytest.fixture(autouse=True)
def clock():
    """Usage is charged (dated) an hour after T0; program dates are judged against that."""
    with time_machine.travel(T0 + timedelta(hours=1), tick=True):
        yield


@pytest.fixture
def programs(db) -> dict[str, Program]:
    made = {}
    for kind, rate in (("pods", "0.03"), ("serverless", "0.05"), ("templates", "0.01")):
        made[kind] = Program.objects.create(
            kind=kind, name=f"{kind} program", rate=Decimal(rate), starts_on=date(2026, 1, 1)
        )
    return made


def new_account(email: str) -> tuple[User, Team]:
    """A user with their personal account (no password: hashing 20 of them is slow)."""
    user = User.objects.create_user(email=email)
    return user, create_personal_team(user=user)


def referred(referrer: User, email: str) -> Team:
    """An account created through `referrer`'s link; returns its personal team."""
    user, team = new_account(email)
    assert attribute_signup(user=user, team=team, code=referrer.referral_code)
    return team


def top_up(team: Team, amount: str) -> None:
    post_entry(
        team=team,
        amount=Decimal(amount),
        kind="top_up",
        idempotency_key=f"test-top-up:{team.pk}:{amount}",
        description="Card top-up",
    )


def gpu_machine(price: str) -> Machine:
    """A Secure Cloud machine whose one GPU type costs `price` per hour."""
    dc, _ = DataCenter.objects.get_or_create(id="EU-RO-1", defaults={"name": "Bucharest"})
    gpu = GpuType.objects.create(
        id=f"TEST GPU {price}",
        display_name=f"Test {price}",
        memory_gb=24,
        secure_price=Decimal(price),
        community_price=Decimal(price),
        min_bid=Decimal("0.10"),
    )
    return Machine.objects.create(
        name=f"box-{price}",
        data_center=dc,
        cloud_type=CloudType.SECURE,
        gpu_type=gpu,
        gpu_count=8,
        vcpu=64,
        memory_gb=512,
        disk_gb=8000,
    )


def running_pod(team: Team, machine: Machine, *, since=T0, **fields) -> Pod:
    """A running one-GPU pod metered from `since`, no disks (compute charges only). Its team
    gets credit for the long runs here: a catch-up charges no further than a team's funds
    reach (pods.metering), and a staff adjustment earns no commission."""
    post_entry(
        team=team,
        amount=Decimal("1000"),
        kind="adjustment",
        idempotency_key=f"test-runway:{team.pk}",
        description="Test credit for long runs",
    )
    values = dict(
        name="worker",
        container_disk_gb=0,
        volume_gb=0,
        status=Pod.Status.RUNNING,
        metered_until=since,
    )
    values.update(fields)
    return stopped_pod(team, machine, **values)


def public_template(creator: User, team: Team) -> PodTemplate:
    return PodTemplate.objects.create(
        team=team, name="Stable Diffusion", image="sd:1", is_public=True, created_by=creator
    )


HOUR = timedelta(hours=1)

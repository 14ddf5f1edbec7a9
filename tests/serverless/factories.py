"""Serverless helpers: a serverless template and an endpoint made from it (real rows)."""

from decimal import Decimal

from billing.services import post_entry
from pods.models import PodTemplate
from serverless import services
from serverless.models import Endpoint, Worker


def serverless_template(team=None) -> PodTemplate:
    return PodTemplate.objects.create(
        team=team, name="Worker", image="python:3.11-slim", is_serverless=True
    )


def credit(team, amount: str = "100") -> None:
    """Credit for a team's jobs (refused while it is short of funds: serverless.metering),
    once per team; a staff adjustment, so it earns no referral and pays no invoice."""
    post_entry(
        team=team,
        amount=Decimal(amount),
        kind="adjustment",
        idempotency_key=f"test-endpoint-credit:{team.pk}",
        description="Test credit for jobs",
    )


def an_endpoint(team, *, funded: bool = True, **values) -> Endpoint:
    values.setdefault("gpu_type_ids", ["NVIDIA A40"])
    if funded:
        credit(team)
    return Endpoint.objects.create(
        team=team, name=values.pop("name", "echo"), template=serverless_template(team), **values
    )


def a_worker(endpoint: Endpoint) -> tuple[Worker, str]:
    return services.register_worker(actor=None, endpoint=endpoint)

"""Serverless helpers: a serverless template and an endpoint made from it (real rows)."""

from pods.models import PodTemplate
from serverless import services
from serverless.models import Endpoint, Worker


def serverless_template(team=None) -> PodTemplate:
    return PodTemplate.objects.create(
        team=team, name="Worker", image="python:3.11-slim", is_serverless=True
    )


def an_endpoint(team, **values) -> Endpoint:
    values.setdefault("gpu_type_ids", ["NVIDIA A40"])
    return Endpoint.objects.create(
        team=team, name=values.pop("name", "echo"), template=serverless_template(team), **values
    )


def a_worker(endpoint: Endpoint) -> tuple[Worker, str]:
    return services.register_worker(actor=None, endpoint=endpoint)

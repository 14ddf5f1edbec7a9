"""Every action of RunPod's REST API v1 at /v1/ (api/runpod_rest/), for the role matrix test
(tests/test_role_matrix.py reads them through tests/api/matrix.py's API_ROUTES)."""

from pods.connect.services import save_registry_credential
from teams.models import Membership, Role
from tests.pods.factories import catalogue
from tests.pods.matrix import a_pod, a_template, a_volume
from tests.role_matrix import ApiRoute
from tests.serverless.factories import an_endpoint


def an_endpoint_id(team) -> dict:
    catalogue()
    return {"endpoint_id": an_endpoint(team).public_id}


def a_registry_auth(team) -> dict:
    admin = Membership.objects.filter(team=team, role=Role.ADMIN).first().user
    credential = save_registry_credential(
        actor=admin, team=team, name="matrix", registry="docker.io", username="u", password="p"
    )
    return {"credential_id": credential.public_id}


def the_catalogue(team) -> dict:
    catalogue()
    return {}


VOLUME = {"name": "matrix", "size": 10, "dataCenterId": "EU-RO-1"}
REGISTRY = {"name": "m", "username": "u", "password": "p"}

REST_ROUTES = [
    ApiRoute("rest-endpoint-list", "GET", "use"),
    ApiRoute("rest-endpoint-list", "POST", "deploy", data={"name": "matrix"}),
    ApiRoute("rest-endpoint-detail", "GET", "use", make_kwargs=an_endpoint_id),
    ApiRoute(
        "rest-endpoint-detail", "PATCH", "deploy", make_kwargs=an_endpoint_id, data={"name": "m"}
    ),
    ApiRoute("rest-endpoint-detail", "DELETE", "deploy", make_kwargs=an_endpoint_id),
    ApiRoute(
        "rest-endpoint-update", "POST", "deploy", make_kwargs=an_endpoint_id, data={"name": "m"}
    ),
    ApiRoute("rest-pod-list", "GET", "use"),
    ApiRoute("rest-pod-list", "POST", "deploy", data={"imageName": "ubuntu:22.04"}),
    ApiRoute("rest-pod-detail", "GET", "use", make_kwargs=a_pod),
    ApiRoute("rest-pod-detail", "PATCH", "deploy", make_kwargs=a_pod, data={"name": "m"}),
    ApiRoute("rest-pod-detail", "DELETE", "deploy", make_kwargs=a_pod),
    ApiRoute("rest-pod-update", "POST", "deploy", make_kwargs=a_pod, data={"name": "m"}),
    *[
        ApiRoute(f"rest-pod-{verb}", "POST", "deploy", make_kwargs=a_pod)
        for verb in ("start", "stop", "restart", "reset")
    ],
    ApiRoute("rest-template-list", "GET", "use"),
    ApiRoute("rest-template-list", "POST", "deploy", data={"name": "t", "imageName": "ubuntu"}),
    ApiRoute("rest-template-detail", "GET", "use", make_kwargs=a_template),
    ApiRoute("rest-template-detail", "PATCH", "deploy", make_kwargs=a_template, data={"name": "m"}),
    ApiRoute("rest-template-detail", "DELETE", "deploy", make_kwargs=a_template),
    ApiRoute("rest-template-update", "POST", "deploy", make_kwargs=a_template, data={"name": "m"}),
    ApiRoute("rest-network-volume-list", "GET", "use"),
    ApiRoute("rest-network-volume-list", "POST", "deploy", make_kwargs=the_catalogue, data=VOLUME),
    ApiRoute("rest-network-volume-detail", "GET", "use", make_kwargs=a_volume),
    ApiRoute(
        "rest-network-volume-detail", "PATCH", "deploy", make_kwargs=a_volume, data={"size": 20}
    ),
    ApiRoute("rest-network-volume-detail", "DELETE", "deploy", make_kwargs=a_volume),
    ApiRoute(
        "rest-network-volume-update", "POST", "deploy", make_kwargs=a_volume, data={"size": 20}
    ),
    ApiRoute("rest-registry-auth-list", "GET", "deploy"),
    ApiRoute("rest-registry-auth-list", "POST", "deploy", data=REGISTRY),
    ApiRoute("rest-registry-auth-detail", "GET", "deploy", make_kwargs=a_registry_auth),
    ApiRoute("rest-registry-auth-detail", "DELETE", "deploy", make_kwargs=a_registry_auth),
    *[
        ApiRoute(f"rest-billing-{what}", "GET", "billing")
        for what in ("pods", "endpoints", "networkvolumes")
    ],
]

"""Every action of RunPod's REST API v1 at /v1/ (api/runpod_rest/), for the role matrix test
(tests/test_role_matrix.py reads them through tests/api/matrix.py's API_ROUTES)."""

from tests.pods.factories import catalogue
from tests.pods.matrix import a_pod
from tests.role_matrix import ApiRoute
from tests.serverless.factories import an_endpoint


def an_endpoint_id(team) -> dict:
    catalogue()
    return {"endpoint_id": an_endpoint(team).public_id}


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
]

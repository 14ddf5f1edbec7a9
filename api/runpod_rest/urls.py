"""RunPod's REST API v1 at /v1/ (mounted in console/urls.py), no trailing slashes as
runpodctl sends them. DRF views are csrf-exempt; a browser session is still CSRF-checked by
SessionAuthentication, an API key needs no token."""

from django.urls import path

from api.runpod_rest.billing import BillingViewSet
from api.runpod_rest.endpoints import EndpointViewSet
from api.runpod_rest.pods import PodViewSet
from api.runpod_rest.templates import TemplateViewSet
from api.runpod_rest.volumes import NetworkVolumeViewSet, RegistryAuthViewSet

LIST = {"get": "list", "post": "create"}
DETAIL = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}


def resource(prefix: str, viewset, key: str, name: str, posts=("update",), detail=DETAIL):
    """A resource's list, its detail at `<prefix>/<key>`, and the POST verbs on one
    (`.../update` is RunPod's POST twin of PATCH)."""
    one = f"{prefix}/<str:{key}>"
    return [
        path(prefix, viewset.as_view(LIST), name=f"rest-{name}-list"),
        path(one, viewset.as_view(detail), name=f"rest-{name}-detail"),
        *[
            path(f"{one}/{verb}", viewset.as_view({"post": verb}), name=f"rest-{name}-{verb}")
            for verb in posts
        ],
    ]


urlpatterns = [
    *resource("endpoints", EndpointViewSet, "endpoint_id", "endpoint"),
    *resource(
        "pods", PodViewSet, "pod_id", "pod", posts=("update", "start", "stop", "restart", "reset")
    ),
    *resource("templates", TemplateViewSet, "template_id", "template"),
    *resource("networkvolumes", NetworkVolumeViewSet, "volume_id", "network-volume"),
    *resource(
        "containerregistryauth",
        RegistryAuthViewSet,
        "credential_id",
        "registry-auth",
        posts=(),
        detail={"get": "retrieve", "delete": "destroy"},
    ),
    *[
        path(f"billing/{what}", BillingViewSet.as_view({"get": what}), name=f"rest-billing-{what}")
        for what in ("pods", "endpoints", "networkvolumes")
    ],
]

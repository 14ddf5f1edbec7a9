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

urlpatterns = [
    path("endpoints", EndpointViewSet.as_view(LIST), name="rest-endpoint-list"),
    path(
        "endpoints/<str:endpoint_id>", EndpointViewSet.as_view(DETAIL), name="rest-endpoint-detail"
    ),
    path(
        "endpoints/<str:endpoint_id>/update",
        EndpointViewSet.as_view({"post": "update"}),
        name="rest-endpoint-update",
    ),
    path("pods", PodViewSet.as_view(LIST), name="rest-pod-list"),
    path("pods/<str:pod_id>", PodViewSet.as_view(DETAIL), name="rest-pod-detail"),
    *[
        path(
            f"pods/<str:pod_id>/{verb}", PodViewSet.as_view({"post": verb}), name=f"rest-pod-{verb}"
        )
        for verb in ("update", "start", "stop", "restart", "reset")
    ],
    path("templates", TemplateViewSet.as_view(LIST), name="rest-template-list"),
    path(
        "templates/<str:template_id>", TemplateViewSet.as_view(DETAIL), name="rest-template-detail"
    ),
    path(
        "templates/<str:template_id>/update",
        TemplateViewSet.as_view({"post": "update"}),
        name="rest-template-update",
    ),
    path("networkvolumes", NetworkVolumeViewSet.as_view(LIST), name="rest-network-volume-list"),
    path(
        "networkvolumes/<str:volume_id>",
        NetworkVolumeViewSet.as_view(DETAIL),
        name="rest-network-volume-detail",
    ),
    path(
        "networkvolumes/<str:volume_id>/update",
        NetworkVolumeViewSet.as_view({"post": "update"}),
        name="rest-network-volume-update",
    ),
    path(
        "containerregistryauth", RegistryAuthViewSet.as_view(LIST), name="rest-registry-auth-list"
    ),
    path(
        "containerregistryauth/<str:credential_id>",
        RegistryAuthViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="rest-registry-auth-detail",
    ),
    *[
        path(f"billing/{what}", BillingViewSet.as_view({"get": what}), name=f"rest-billing-{what}")
        for what in ("pods", "endpoints", "networkvolumes")
    ],
]

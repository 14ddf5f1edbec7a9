"""The REST API, mounted at /api/v1/. Apps register their viewsets on the router here."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from api import views
from billing.api import BillingViewSet
from pods.api import (
    DataCenterViewSet,
    GpuTypeViewSet,
    NetworkVolumeViewSet,
    PodViewSet,
    TemplateViewSet,
)


class OptionalSlashRouter(SimpleRouter):
    """`/api/v1/api-keys` and `/api/v1/api-keys/` both work: SDKs differ on the slash."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("pods", PodViewSet, basename="api-pod")
router.register("gpu-types", GpuTypeViewSet, basename="api-gpu-type")
router.register("data-centers", DataCenterViewSet, basename="api-data-center")
router.register("templates", TemplateViewSet, basename="api-template")
router.register("network-volumes", NetworkVolumeViewSet, basename="api-network-volume")
router.register("billing", BillingViewSet, basename="api-billing")
router.register("ssh-keys", views.SshKeyViewSet, basename="api-ssh-key")
router.register(
    "registry-credentials", views.RegistryCredentialViewSet, basename="api-registry-credential"
)
router.register("members", views.MemberViewSet, basename="api-member")
router.register("invites", views.InviteViewSet, basename="api-invite")

urlpatterns = [
    re_path(r"^me/?$", views.me, name="api-me"),
    *router.urls,
]

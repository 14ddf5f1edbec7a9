"""The REST API, mounted at /api/v1/. Apps register their viewsets on the router here."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from api import views


class OptionalSlashRouter(SimpleRouter):
    """`/api/v1/api-keys` and `/api/v1/api-keys/` both work: SDKs differ on the slash."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")

urlpatterns = [
    re_path(r"^me/?$", views.me, name="api-me"),
    *router.urls,
]

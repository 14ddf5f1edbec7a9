"""The API's own endpoints: who am I, and API key management. Other apps' API viewsets live in
their `api.py` and are registered in api/urls.py."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from api.access import api_membership, request_api_key
from api.serializers import ApiKeyCreateSerializer, ApiKeySerializer, ApiKeyUpdateSerializer
from api.viewsets import TeamScopedViewSet
from teams import services
from teams.models import ApiKey


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI over the OpenAPI schema (vendored, no inline script: the console's CSP)."""
    return render(request, "api/docs.html", {"site_name": settings.SITE_NAME})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def me(request: Request) -> Response:
    membership = api_membership(request, "member")
    key = request_api_key(request)
    pod_key = key is not None and key.is_pod_key
    return Response(
        {
            "user": None
            if pod_key
            else {"email": membership.user.email, "name": membership.user.name},
            "team": {
                "slug": membership.team.slug,
                "name": membership.team.name,
                "is_personal": membership.team.is_personal,
            },
            "role": membership.role,
            "api_key": {
                "id": key.public_id,
                "name": key.name,
                "permission": key.permission,
                "pod": key.pod_public_id or None,
            }
            if key
            else None,
        }
    )


class ApiKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TeamScopedViewSet
):
    """The team's API keys. The secret is returned once, in the response to create."""

    queryset = ApiKey.objects.select_related("created_by")
    serializer_class = ApiKeySerializer
    capabilities = {
        "list": "admin",
        "retrieve": "admin",
        "create": "admin",
        "partial_update": "admin",
        "destroy": "admin",
    }

    def create(self, request: Request) -> Response:
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = services.create_api_key(
            team=self.team, actor=request.user, **data.validated_data
        )
        body = {**ApiKeySerializer(key).data, "key": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, public_id: str) -> Response:
        data = ApiKeyUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = services.set_api_key_enabled(
            key=self.get_object(), actor=request.user, enabled=data.validated_data["is_enabled"]
        )
        return Response(ApiKeySerializer(key).data)

    def perform_destroy(self, instance: ApiKey) -> None:
        services.revoke_api_key(key=instance, actor=self.request.user)

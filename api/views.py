"""The API's own endpoints: who am I, API keys, SSH keys, registry credentials, members and
invites. Other apps' API viewsets live in their `api.py` and are registered in api/urls.py."""

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from api.access import api_membership, request_api_key
from api.authentication import person
from api.exceptions import NON_FIELD
from api.serializers import (
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    ApiKeyUpdateSerializer,
    InviteCreatedSerializer,
    InviteCreateSerializer,
    InviteSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    RegistryCredentialCreateSerializer,
    RegistryCredentialSerializer,
    RegistryCredentialUpdateSerializer,
    SshKeyCreateSerializer,
    SshKeySerializer,
)
from api.viewsets import TeamScopedViewSet
from pods.api import form_errors
from pods.connect import services as connect
from pods.connect.forms import RegistryCredentialForm
from pods.connect.ssh import InvalidKey
from pods.models import RegistryCredential, SshKey
from teams import services
from teams.models import ApiKey, Invite, Membership, Role


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


def _refused(error: Exception, field: str | None = None) -> ValidationError:
    return ValidationError({field or NON_FIELD: [str(error)]})


class SshKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TeamScopedViewSet
):
    """The caller's own SSH public keys (they belong to the person, not the team: every pod the
    person may connect to gets them). Asked through a team, as the console's SSH keys page is."""

    queryset = SshKey.objects.all()
    serializer_class = SshKeySerializer
    capabilities = {"list": "use", "retrieve": "use", "create": "use", "destroy": "use"}

    def get_queryset(self) -> QuerySet:
        return SshKey.objects.filter(user=person(self.request)).order_by("-created_at", "-id")

    @extend_schema(request=SshKeyCreateSerializer, responses={201: SshKeySerializer})
    def create(self, request: Request) -> Response:
        shape = SshKeyCreateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        try:
            key = connect.add_ssh_key(actor=person(request), team=self.team, **shape.validated_data)
        except InvalidKey as error:
            raise _refused(error, "public_key") from error
        except connect.ConnectError as error:
            raise _refused(error, error.field) from error
        return Response(SshKeySerializer(key).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: SshKey) -> None:
        connect.delete_ssh_key(actor=person(self.request), team=self.team, key=instance)


class RegistryCredentialViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TeamScopedViewSet
):
    """The team's logins for private image registries. The password is write-only: it is
    taken on create and update and never appears in any answer."""

    queryset = RegistryCredential.objects.select_related("created_by").order_by("name", "id")
    serializer_class = RegistryCredentialSerializer
    capabilities = {
        "list": "deploy",
        "retrieve": "deploy",
        "create": "deploy",
        "update": "deploy",
        "destroy": "deploy",
    }

    @extend_schema(
        request=RegistryCredentialCreateSerializer, responses={201: RegistryCredentialSerializer}
    )
    def create(self, request: Request) -> Response:
        shape = RegistryCredentialCreateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        form = RegistryCredentialForm(shape.validated_data)
        if not form.is_valid():
            raise ValidationError(form_errors(form))
        try:
            credential = connect.save_registry_credential(
                actor=person(request), team=self.team, **form.cleaned_data
            )
        except connect.ConnectError as error:
            raise _refused(error, error.field) from error
        return Response(self.get_serializer(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=RegistryCredentialUpdateSerializer, responses={200: RegistryCredentialSerializer}
    )
    def update(self, request: Request, public_id: str) -> Response:
        """A new login (username and password) for the same registry, as the runpod SDK's
        updateRegistryAuth: PUT, since the secret is always sent again."""
        credential = self.get_object()
        shape = RegistryCredentialUpdateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        values = {"name": credential.name, "registry": credential.registry}
        values.update(shape.validated_data)
        form = RegistryCredentialForm(values)
        if not form.is_valid():
            raise ValidationError(form_errors(form))
        credential = connect.update_registry_credential(
            actor=person(request),
            credential=credential,
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
        )
        return Response(self.get_serializer(credential).data)

    def perform_destroy(self, instance: RegistryCredential) -> None:
        connect.delete_registry_credential(actor=person(self.request), credential=instance)


ROLE_FILTER = OpenApiParameter("role", str, enum=Role.values, description="Only this role.")


def _by_role(queryset: QuerySet, request: Request) -> QuerySet:
    role = request.query_params.get("role")
    if role is None:
        return queryset
    if role not in Role.values:
        raise ValidationError({"role": [f"Choose one of: {', '.join(Role.values)}."]})
    return queryset.filter(role=role)


class MemberViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TeamScopedViewSet
):
    """The team's members. Every member sees them; admins change roles and remove members,
    with the console's rules (a team keeps an admin; nobody leaves a personal account; to
    leave yourself use the console's Leave team)."""

    queryset = Membership.objects.select_related("user", "team").order_by("user__email")
    serializer_class = MemberSerializer
    capabilities = {
        "list": "member",
        "retrieve": "member",
        "partial_update": "admin",
        "destroy": "admin",
    }

    def get_queryset(self) -> QuerySet:
        person(self.request)  # a pod's key (POD_KEY_ROLE) never sees who is in its team
        members = super().get_queryset()
        return _by_role(members, self.request) if self.action == "list" else members

    @extend_schema(parameters=[ROLE_FILTER])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=MemberUpdateSerializer, responses={200: MemberSerializer})
    def partial_update(self, request: Request, public_id: str) -> Response:
        shape = MemberUpdateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        try:
            membership = services.change_role(
                membership=self.get_object(), actor=person(request), **shape.validated_data
            )
        except services.TeamError as error:
            raise _refused(error, "role") from error
        return Response(self.get_serializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        actor = person(self.request)
        if instance.user_id == actor.pk:
            raise _refused("To leave the team yourself, use “Leave team” in the console.")
        try:
            services.remove_member(membership=instance, actor=actor)
        except services.TeamError as error:
            raise _refused(error) from error


class InviteViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TeamScopedViewSet
):
    """Invite links (admins). The list holds the pending ones, as the console's members page
    does; the link itself is in the answer to create only. DELETE revokes an invite."""

    queryset = Invite.objects.select_related("created_by", "team").order_by("-created_at", "-id")
    serializer_class = InviteSerializer
    capabilities = {"list": "admin", "retrieve": "admin", "create": "admin", "destroy": "admin"}

    def get_queryset(self) -> QuerySet:
        invites = super().get_queryset()
        if self.action == "list":
            return _by_role(invites.pending(), self.request)
        return invites

    @extend_schema(parameters=[ROLE_FILTER])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=InviteCreateSerializer, responses={201: InviteCreatedSerializer})
    def create(self, request: Request) -> Response:
        shape = InviteCreateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        try:
            invite = services.create_invite(
                team=self.team, actor=person(request), **shape.validated_data
            )
        except services.TeamError as error:
            raise _refused(error) from error
        body = InviteCreatedSerializer(invite, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Invite) -> None:
        try:
            services.revoke_invite(invite=instance, actor=person(self.request))
        except services.TeamError as error:
            raise _refused(error) from error

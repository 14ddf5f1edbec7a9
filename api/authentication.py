"""API keys, as the runpod SDK, worker and CLI send them: `Authorization: Bearer <key>`,
a raw `Authorization: <key>` (the serverless worker), or `?api_key=<key>`."""

from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions

from teams.models import API_KEY_PREFIX, ApiKey, hash_api_key


@dataclass(frozen=True)
class PodPrincipal:
    """request.user for a pod's own key (RUNPOD_API_KEY): no person, the pod itself. Audit
    events name it as their actor label; api.access gives it POD_KEY_ROLE in the pod's team."""

    pod_public_id: str
    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None

    def __str__(self) -> str:
        return f"pod {self.pod_public_id}"


def person(request):
    """The person acting: rows that record their creator (templates, SSH keys, registry
    logins, team changes) need one, and a pod's own key (a hostile pod holds it) is nobody."""
    if isinstance(request.user, PodPrincipal):
        raise exceptions.PermissionDenied("A pod's own API key cannot do this.")
    return request.user


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def key_from_request(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    if header:
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "bearer" and rest:
            return rest.strip()
        if header.startswith(API_KEY_PREFIX):
            return header
        return None
    return request.GET.get("api_key") or None


def authenticate_key(secret: str) -> ApiKey:
    keys = ApiKey.objects.select_related("team", "created_by")
    try:  # get(), not first(): the hash is unique, and an ORDER BY costs CPU to build
        key = keys.get(key_hash=hash_api_key(secret))
    except ApiKey.DoesNotExist:
        raise exceptions.AuthenticationFailed("Invalid API key.") from None
    if not key.is_enabled:
        raise exceptions.AuthenticationFailed("This API key is disabled.")
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates as the key's team; request.auth is the key, request.user its creator (or
    a PodPrincipal for a pod's key). Read-only keys are refused on unsafe methods."""

    refuses_read_only_writes = True

    def authenticate(self, request):
        secret = key_from_request(request)
        if not secret:
            return None
        key = authenticate_key(secret)
        unsafe = request.method not in SAFE_METHODS
        if self.refuses_read_only_writes and key.is_read_only and unsafe:
            raise exceptions.PermissionDenied("This API key is read-only.")
        if key.is_pod_key:
            return (PodPrincipal(key.pod_public_id), key)
        if key.created_by is None or not key.created_by.is_active:
            raise exceptions.AuthenticationFailed("The owner of this API key is inactive.")
        return (key.created_by, key)

    def authenticate_header(self, request):
        return "Bearer"

"""API keys, as the runpod SDK, worker and CLI send them: `Authorization: Bearer <key>`,
a raw `Authorization: <key>`, or `?api_key=<key>`."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from teams.models import API_KEY_PREFIX, ApiKey, hash_api_key

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
    key = (
        ApiKey.objects.select_related("team", "created_by")
        .filter(key_hash=hash_api_key(secret))
        .first()
    )
    if key is None:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    if not key.is_enabled:
        raise exceptions.AuthenticationFailed("This API key is disabled.")
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates as the key's team; request.user is the key's creator, request.auth the key.
    Read-only keys are refused on unsafe methods."""

    def authenticate(self, request):
        secret = key_from_request(request)
        if not secret:
            return None
        key = authenticate_key(secret)
        if key.is_read_only and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied("This API key is read-only.")
        if key.created_by is None or not key.created_by.is_active:
            raise exceptions.AuthenticationFailed("The owner of this API key is inactive.")
        return (key.created_by, key)

    def authenticate_header(self, request):
        return "Bearer"

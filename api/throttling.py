"""Rate limiting per API key (or per signed-in user for browser sessions), counted in the Redis
cache so every gunicorn worker shares one count."""

from rest_framework.throttling import SimpleRateThrottle

from api.access import request_api_key


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api"

    def get_cache_key(self, request, view) -> str | None:
        key = request_api_key(request)
        if key is not None:
            ident = f"key:{key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

"""How the OpenAPI schema (drf-spectacular) describes our API-key authentication: the three
forms the runpod SDK sends, documented as a bearer token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer <key> (also a raw key, or ?api_key=<key>).",
        }


def only_rest_api(endpoints: list) -> list:
    """The schema documents the REST API under /api/v1/ only: /graphql has its own schema
    (and no serializers for drf-spectacular to describe)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]

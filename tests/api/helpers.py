"""API test helpers: a client that authenticates with a real API key, as scripts do."""

from rest_framework.test import APIClient

from teams.services import create_api_key


def key_client(team, user, permission: str = "read_write") -> tuple[APIClient, str]:
    """A client sending `Authorization: Bearer <key>`, and the key's public id."""
    key, secret = create_api_key(team=team, actor=user, name="test", permission=permission)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client, key.public_id

"""Every REST API action under /api/v1/, for the role matrix test (tests/test_role_matrix.py)."""

from teams.models import Membership, Role
from teams.services import create_api_key
from tests.role_matrix import ApiRoute


def a_key(team) -> dict:
    admin = Membership.objects.filter(team=team, role=Role.ADMIN).first().user
    key, _ = create_api_key(team=team, actor=admin, name="matrix", permission="read_write")
    return {"public_id": key.public_id}


API_ROUTES = [
    ApiRoute("api-me", "GET", "member"),
    ApiRoute("api-key-list", "GET", "admin"),
    ApiRoute("api-key-list", "POST", "admin", data={"name": "from the matrix"}),
    ApiRoute("api-key-detail", "GET", "admin", make_kwargs=a_key),
    ApiRoute("api-key-detail", "PATCH", "admin", make_kwargs=a_key, data={"is_enabled": False}),
    ApiRoute("api-key-detail", "DELETE", "admin", make_kwargs=a_key),
]

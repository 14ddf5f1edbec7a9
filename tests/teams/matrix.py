from teams.models import ApiKey, Invite, Membership, Role, hash_api_key
from tests.conftest import make_user
from tests.role_matrix import Route


def a_member(team) -> dict:
    user = make_user(f"member-{Membership.objects.count()}@matrix.example.com")
    membership = Membership.objects.create(user=user, team=team, role=Role.BASIC)
    return {"member_id": membership.public_id}


def an_invite(team) -> dict:
    return {"invite_id": Invite.objects.create(team=team, role=Role.DEV).public_id}


def an_api_key(team) -> dict:
    secret = ApiKey.generate_secret()
    key = ApiKey.objects.create(
        team=team, name="matrix", prefix=secret[:12], key_hash=hash_api_key(secret)
    )
    return {"key_id": key.public_id}


ROUTES = [
    Route("members", "member"),
    Route("convert_team", "admin", methods=("GET", "POST"), data={"name": "Matrix Co"}),
    Route("leave_team", "member", methods=("POST",)),
    Route("change_role", "admin", methods=("POST",), make_kwargs=a_member, data={"role": "dev"}),
    Route("remove_member", "admin", methods=("POST",), make_kwargs=a_member),
    Route("create_invite", "admin", methods=("POST",), data={"role": "dev"}),
    Route("revoke_invite", "admin", methods=("POST",), make_kwargs=an_invite),
    Route("settings", "admin", methods=("GET", "POST"), data={"name": "Renamed"}),
    Route(
        "api_keys", "admin", methods=("GET", "POST"), data={"name": "CI", "permission": "read_only"}
    ),
    Route("api_key_toggle", "admin", methods=("POST",), make_kwargs=an_api_key),
    Route("api_key_revoke", "admin", methods=("POST",), make_kwargs=an_api_key),
    Route("audit_log", "admin"),
    Route("audit_log_csv", "admin"),
]

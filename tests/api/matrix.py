"""Every REST API action under /api/v1/, for the role matrix test (tests/test_role_matrix.py)."""

from pods.connect.services import add_ssh_key, save_registry_credential
from teams.models import Membership, Role
from teams.services import create_api_key, create_invite
from tests.api.runpod_rest_matrix import REST_ROUTES
from tests.conftest import make_user
from tests.pods.factories import catalogue
from tests.pods.matrix import a_pod as a_stopped_pod
from tests.pods.matrix import a_template, a_volume
from tests.role_matrix import ApiRoute


def a_key(team) -> dict:
    admin = Membership.objects.filter(team=team, role=Role.ADMIN).first().user
    key, _ = create_api_key(team=team, actor=admin, name="matrix", permission="read_write")
    return {"public_id": key.public_id}


def _admin(team):
    return Membership.objects.filter(team=team, role=Role.ADMIN).first().user


def an_ssh_key(team) -> dict:
    """A key of the acting member: the matrix client is the newest member of the team."""
    member = Membership.objects.filter(team=team).order_by("-created_at", "-id").first()
    key = add_ssh_key(actor=member.user, team=team, name="matrix", public_key=PUBLIC_KEY)
    return {"public_id": key.public_id}


def a_credential(team) -> dict:
    credential = save_registry_credential(
        actor=_admin(team), team=team, name="matrix", registry="ghcr.io", username="u", password="p"
    )
    return {"public_id": credential.public_id}


def a_member(team) -> dict:
    user = make_user("member@matrix.example.com")
    return {"public_id": Membership.objects.create(team=team, user=user, role=Role.BASIC).public_id}


def an_invite(team) -> dict:
    return {"public_id": create_invite(team=team, actor=_admin(team), role=Role.DEV).public_id}


def a_pod(team) -> dict:
    return {"public_id": a_stopped_pod(team)["pod_id"]}


def a_team_template(team) -> dict:
    return {"public_id": a_template(team)["template_id"]}


def a_network_volume(team) -> dict:
    return {"public_id": a_volume(team)["volume_id"]}


def a_gpu_type(team) -> dict:
    return {"pk": catalogue()["a40"].pk}


def a_data_center(team) -> dict:
    return {"pk": catalogue()["dc"].pk}


def the_catalogue(team) -> dict:
    catalogue()
    return {}


PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl matrix"
)
REGISTRY = {"name": "m", "registry": "ghcr.io", "username": "u", "password": "p"}
DEPLOY = {"gpu_type": "NVIDIA A40", "gpu_count": 1, "image": "python:3.11-slim"}
VOLUME = {"name": "from the matrix", "size_gb": 10, "data_center": "EU-RO-1"}

API_ROUTES = [
    ApiRoute("api-me", "GET", "member"),
    ApiRoute("api-key-list", "GET", "admin"),
    ApiRoute("api-key-list", "POST", "admin", data={"name": "from the matrix"}),
    ApiRoute("api-key-detail", "GET", "admin", make_kwargs=a_key),
    ApiRoute("api-key-detail", "PATCH", "admin", make_kwargs=a_key, data={"is_enabled": False}),
    ApiRoute("api-key-detail", "DELETE", "admin", make_kwargs=a_key),
    ApiRoute("api-pod-list", "GET", "use"),
    ApiRoute("api-pod-list", "POST", "deploy", make_kwargs=the_catalogue, data=DEPLOY),
    ApiRoute("api-pod-detail", "GET", "use", make_kwargs=a_pod),
    ApiRoute("api-pod-stop", "POST", "deploy", make_kwargs=a_pod),
    ApiRoute("api-pod-start", "POST", "deploy", make_kwargs=a_pod),
    ApiRoute("api-pod-terminate", "POST", "deploy", make_kwargs=a_pod),
    ApiRoute("api-gpu-type-list", "GET", "use", make_kwargs=the_catalogue),
    ApiRoute("api-gpu-type-detail", "GET", "use", make_kwargs=a_gpu_type),
    ApiRoute("api-data-center-list", "GET", "use", make_kwargs=the_catalogue),
    ApiRoute("api-data-center-detail", "GET", "use", make_kwargs=a_data_center),
    ApiRoute("api-template-list", "GET", "use"),
    ApiRoute("api-template-list", "POST", "deploy", data={"name": "t", "image": "ubuntu:22.04"}),
    ApiRoute("api-template-detail", "GET", "use", make_kwargs=a_team_template),
    ApiRoute("api-network-volume-list", "GET", "use"),
    ApiRoute("api-network-volume-list", "POST", "deploy", make_kwargs=the_catalogue, data=VOLUME),
    ApiRoute("api-network-volume-detail", "GET", "use", make_kwargs=a_network_volume),
    ApiRoute("api-network-volume-detail", "DELETE", "deploy", make_kwargs=a_network_volume),
    ApiRoute("api-billing-balance", "GET", "billing"),
    ApiRoute("api-billing-ledger", "GET", "billing"),
    ApiRoute("api-ssh-key-list", "GET", "use"),
    ApiRoute("api-ssh-key-list", "POST", "use", data={"public_key": PUBLIC_KEY}),
    ApiRoute("api-ssh-key-detail", "GET", "use", make_kwargs=an_ssh_key),
    ApiRoute("api-ssh-key-detail", "DELETE", "use", make_kwargs=an_ssh_key),
    ApiRoute("api-registry-credential-list", "GET", "deploy"),
    ApiRoute("api-registry-credential-list", "POST", "deploy", data=REGISTRY),
    ApiRoute("api-registry-credential-detail", "GET", "deploy", make_kwargs=a_credential),
    ApiRoute(
        "api-registry-credential-detail",
        "PUT",
        "deploy",
        make_kwargs=a_credential,
        data={"username": "u", "password": "new"},
    ),
    ApiRoute("api-registry-credential-detail", "DELETE", "deploy", make_kwargs=a_credential),
    ApiRoute("api-member-list", "GET", "member"),
    ApiRoute("api-member-detail", "GET", "member", make_kwargs=a_member),
    ApiRoute("api-member-detail", "PATCH", "admin", make_kwargs=a_member, data={"role": "dev"}),
    ApiRoute("api-member-detail", "DELETE", "admin", make_kwargs=a_member),
    ApiRoute("api-invite-list", "GET", "admin"),
    ApiRoute("api-invite-list", "POST", "admin", data={"role": "dev"}),
    ApiRoute("api-invite-detail", "GET", "admin", make_kwargs=an_invite),
    ApiRoute("api-invite-detail", "DELETE", "admin", make_kwargs=an_invite),
    *REST_ROUTES,  # /v1/, RunPod's REST API for runpodctl
]

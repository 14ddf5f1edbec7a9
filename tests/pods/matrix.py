from pods.connect.crypto import encrypt
from pods.models import NetworkVolume, PodTemplate, RegistryCredential, SshKey
from tests.pods.factories import catalogue, stopped_pod
from tests.role_matrix import Route

# A generated Ed25519 public key (its private half was discarded).
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP83fbC2cHrCaKTtYgg2KPmeIhwY1vpLO7NyOQ8/5hcN "
    "matrix@example.com"
)


def a_pod(team) -> dict:
    parts = catalogue()
    return {"pod_id": stopped_pod(team, parts["machine"]).public_id}


def a_template(team) -> dict:
    template = PodTemplate.objects.create(team=team, name="Mine", image="ubuntu:22.04")
    return {"template_id": template.public_id}


def a_volume(team) -> dict:
    parts = catalogue()
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    return {"volume_id": volume.public_id}


def an_ssh_key(team) -> dict:
    owner = team.memberships.first().user
    key = SshKey.objects.create(
        user=owner, name="k", key_type="ssh-ed25519", public_key=ED25519, fingerprint="f"
    )
    return {"key_id": key.public_id}


def a_credential(team) -> dict:
    credential = RegistryCredential.objects.create(
        team=team, name="hub", registry="docker.io", username="u", password_encrypted=encrypt("p")
    )
    return {"credential_id": credential.public_id}


ROUTES = [
    Route("pod_list", "use"),
    Route("pod_deploy", "deploy", ("GET", "POST")),
    Route("pod_detail", "use", make_kwargs=a_pod),
    Route("pod_logs", "use", make_kwargs=a_pod),
    # A stopped pod: stop refuses with a message, start finds no funds; both are allowed calls.
    Route("pod_stop", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_start", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_restart", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_terminate", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_rename", "deploy", ("POST",), make_kwargs=a_pod, data={"name": "renamed"}),
    Route("pod_timer", "deploy", ("POST",), make_kwargs=a_pod, data={"action": "stop"}),
    Route("template_list", "use"),
    Route("template_create", "deploy", ("GET", "POST")),
    Route("template_edit", "deploy", ("GET", "POST"), make_kwargs=a_template),
    Route("template_delete", "deploy", ("POST",), make_kwargs=a_template),
    Route("storage", "use"),
    Route("network_volume_create", "deploy", ("POST",)),
    Route("network_volume_grow", "deploy", ("POST",), make_kwargs=a_volume, data={"size_gb": 20}),
    Route("network_volume_delete", "deploy", ("POST",), make_kwargs=a_volume),
    Route("pod_terminal", "use", make_kwargs=a_pod),
    Route("pod_proxy_access", "deploy", ("POST",), make_kwargs=a_pod, data={"access": "public"}),
    Route("ssh_keys", "use", ("GET", "POST"), data={"public_key": ED25519}),
    # Someone else's key: refused with a message, like any key that is not yours.
    Route("ssh_key_delete", "use", ("POST",), make_kwargs=an_ssh_key),
    Route(
        "registry_credentials",
        "deploy",
        ("GET", "POST"),
        data={"name": "hub", "registry": "docker.io", "username": "u", "password": "p"},
    ),
    Route("registry_credential_delete", "deploy", ("POST",), make_kwargs=a_credential),
]

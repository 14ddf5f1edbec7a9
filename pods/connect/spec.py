"""What connecting adds to a pod's start: the team's SSH keys (PUBLIC_KEY, as RunPod images
expect) and the registry login for its image. Called by pods.lifecycle.build_spec."""

from __future__ import annotations

from pods.connect.crypto import SecretUnreadable, decrypt
from pods.models import RegistryCredential, SshKey
from teams.access import CAPABILITIES
from teams.models import Team

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "hub.docker.com"}
# What the Docker Engine expects as serveraddress for Docker Hub logins.
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"


def authorized_keys(team: Team) -> str:
    """Every SSH key of the team's members who may connect to pods, one per line."""
    keys = SshKey.objects.filter(
        user__memberships__team=team,
        user__memberships__role__in=CAPABILITIES["use"],
        user__is_active=True,
    ).order_by("user_id", "created_at")
    return "\n".join(key.public_key for key in keys)


def normalize_registry(value: str) -> str:
    """ "https://GHCR.io/acme/" -> "ghcr.io/acme"; Docker Hub's many names -> "docker.io"."""
    value = value.strip().lower().removeprefix("https://").removeprefix("http://").strip("/")
    host, _, path = value.partition("/")
    host = DOCKER_HUB if host in DOCKER_HUB_ALIASES else host
    if host == DOCKER_HUB and path in ("v1", "v2"):
        path = ""
    return f"{host}/{path}" if path else host


def image_location(image: str) -> str:
    """ "ghcr.io/acme/app:1" -> "ghcr.io/acme/app"; "ubuntu:22.04" -> "docker.io/library/ubuntu"
    (Docker's rule: the first part names a registry if it has a dot or a port, or is localhost)."""
    name = image.strip().split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first.lower(), rest
    else:
        host, path = DOCKER_HUB, name if rest else f"library/{name}"
    path = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
    return f"{normalize_registry(host)}/{path.lower()}"


def credential_for(team: Team, image: str) -> RegistryCredential | None:
    """The team's credential whose registry (host, or host/path prefix) is the longest match."""
    location = image_location(image)
    best = None
    for credential in RegistryCredential.objects.filter(team=team):
        registry = normalize_registry(credential.registry)
        if location.startswith(registry + "/") and (
            best is None or len(registry) > len(normalize_registry(best.registry))
        ):
            best = credential
    return best


def registry_auth(team: Team, image: str) -> dict | None:
    """PodSpec.registry_auth for the image, or None to pull anonymously."""
    credential = credential_for(team, image)
    if credential is None:
        return None
    try:
        password = decrypt(credential.password_encrypted)
    except SecretUnreadable:
        return None  # the pull then fails with the engine's own "unauthorized" message
    host = normalize_registry(credential.registry).split("/", 1)[0]
    server = DOCKER_HUB_SERVER if host == DOCKER_HUB else host
    return {"username": credential.username, "password": password, "registry": server}

"""Registry credentials: encrypted at rest, never shown again, matched to images at start."""

import pytest
from cryptography.fernet import Fernet

from pods import lifecycle
from pods.connect import services
from pods.connect.crypto import SecretUnreadable, decrypt, encrypt
from pods.connect.spec import DOCKER_HUB_SERVER, credential_for, image_location
from pods.models import Pod, RegistryCredential
from teams.models import AuditEvent
from tests.conftest import login

SECRET = "ghp_s3cr3t-token-value"


def save(team, actor, name: str, registry: str, password: str = SECRET) -> RegistryCredential:
    return services.save_registry_credential(
        actor=actor, team=team, name=name, registry=registry, username="acme-bot", password=password
    )


def test_it_stores_the_password_encrypted_and_never_shows_it_again(team, bob):
    client = login(bob)
    form = {"name": "GitHub", "registry": "https://GHCR.io/acme/", "username": "acme-bot"}
    response = client.post("/t/acme/settings/registries/", {**form, "password": SECRET})
    assert response.status_code == 302
    credential = RegistryCredential.objects.get(team=team)
    assert credential.registry == "ghcr.io/acme"
    assert SECRET not in credential.password_encrypted
    assert decrypt(credential.password_encrypted) == SECRET
    page = client.get("/t/acme/settings/registries/").content.decode()
    assert "GitHub" in page and "ghcr.io/acme" in page and "acme-bot" in page
    assert SECRET not in page and credential.password_encrypted not in page
    event = AuditEvent.objects.get(action="registry_credential.created")
    assert SECRET not in str(event.details) and event.details["registry"] == "ghcr.io/acme"


def test_it_refuses_a_duplicate_name_and_a_bad_host_without_echoing_the_password(team, bob):
    save(team, bob, "GitHub", "ghcr.io")
    client = login(bob)
    form = {"name": "GitHub", "registry": "ghcr.io", "username": "u", "password": SECRET}
    duplicate = client.post("/t/acme/settings/registries/", form)
    assert duplicate.status_code == 400
    assert "exists" in duplicate.content.decode() and SECRET not in duplicate.content.decode()
    bad = client.post("/t/acme/settings/registries/", {**form, "name": "x", "registry": "a b"})
    assert bad.status_code == 400 and "Enter a host" in bad.content.decode()


def test_it_deletes_a_credential_with_an_audit_row(team, bob):
    credential = save(team, bob, "Hub", "docker.io")
    login(bob).post(f"/t/acme/settings/registries/{credential.public_id}/delete/")
    assert not RegistryCredential.objects.exists()
    assert AuditEvent.objects.filter(action="registry_credential.deleted").exists()


def test_it_rotates_keys_and_reports_secrets_saved_under_a_lost_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    token = encrypt("pw")
    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"
    assert decrypt(token) == "pw"
    assert decrypt(encrypt("pw2")) == "pw2"
    settings.FIELD_ENCRYPTION_KEY = new
    with pytest.raises(SecretUnreadable):
        decrypt(token)


@pytest.mark.parametrize(
    ("image", "location"),
    [
        ("ubuntu:22.04", "docker.io/library/ubuntu"),
        ("runpod/pytorch:2.1.0-py3.10", "docker.io/runpod/pytorch"),
        ("ghcr.io/Acme/App:1", "ghcr.io/acme/app"),
        ("localhost:5000/tools/x@sha256:abc", "localhost:5000/tools/x"),
        ("index.docker.io/acme/private", "docker.io/acme/private"),
        ("registry.example.com:5000/team/img:latest", "registry.example.com:5000/team/img"),
    ],
)
def test_it_locates_images_the_way_docker_does(image, location):
    assert image_location(image) == location


def test_it_picks_the_longest_matching_registry_for_the_image(team, bob):
    hub = save(team, bob, "Hub", "docker.io")
    ghcr = save(team, bob, "GHCR", "ghcr.io")
    acme = save(team, bob, "GHCR acme", "ghcr.io/acme")
    assert credential_for(team, "ghcr.io/acme/app:1") == acme
    assert credential_for(team, "ghcr.io/other/app") == ghcr
    assert credential_for(team, "ghcr.io/acme-corp/app") == ghcr  # a path prefix, not a string one
    assert credential_for(team, "acme/private:1") == hub
    assert credential_for(team, "quay.io/acme/app") is None


def test_it_passes_the_credential_to_the_runtime_when_a_pod_starts(team, bob, parts):
    save(team, bob, "Hub", "docker.io", password="hub-pass")
    save(team, bob, "Quay", "quay.io", password="quay-pass")
    pod = Pod(team=team, machine=parts["machine"], public_id="p1", vcpu=1, memory_gb=1)
    pod.container_disk_gb = 5
    pod.image = "acme/private:1"
    assert lifecycle.build_spec(pod, "k").registry_auth == {
        "username": "acme-bot",
        "password": "hub-pass",
        "registry": DOCKER_HUB_SERVER,
    }
    pod.image = "quay.io/acme/tool"
    assert lifecycle.build_spec(pod, "k").registry_auth["registry"] == "quay.io"
    pod.image = "ghcr.io/public/tool"
    assert lifecycle.build_spec(pod, "k").registry_auth is None

"""SSH keys: parsing real ssh-keygen output, the settings page, and PUBLIC_KEY in pods."""

import base64
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from pods import lifecycle, services
from pods.connect.ssh import InvalidKey, parse_public_key
from pods.models import Pod, SshKey
from teams.models import AuditEvent, Membership
from tests.conftest import login, make_user
from tests.pods.factories import deploy_request, fund


def keygen(tmp_path: Path, kind: str, bits: str = "", comment: str = "me@laptop") -> tuple:
    """(public key line, `ssh-keygen -l` SHA256 fingerprint) of a fresh key."""
    path = tmp_path / f"id_{kind}{bits}_{comment}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    subprocess.run(args + (["-b", bits] if bits else []), check=True)
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"],
        check=True,
        capture_output=True,
        text=True,
    )
    fingerprint = listed.stdout.split()[1].removeprefix("SHA256:")
    return Path(f"{path}.pub").read_text().strip(), fingerprint, path


@pytest.mark.parametrize(("kind", "bits"), [("ed25519", ""), ("rsa", "2048"), ("ecdsa", "256")])
def test_it_reads_keys_made_by_ssh_keygen_with_the_same_fingerprint(tmp_path, kind, bits):
    line, fingerprint, _ = keygen(tmp_path, kind, bits)
    key = parse_public_key(f"\n  {line}  \n")
    assert key.line == line
    assert key.fingerprint == fingerprint
    assert key.comment == "me@laptop"


def test_it_refuses_what_is_not_one_good_public_key(tmp_path):
    line, _, private = keygen(tmp_path, "ed25519")
    rsa_1024, _, _ = keygen(tmp_path, "rsa", "1024")
    kind, blob, _ = line.split(" ", 2)
    cases = {
        "hello": "not an OpenSSH public key",
        private.read_text(): "private key",
        f"{line}\n{line}": "exactly one public key",
        f"ssh-rsa {blob}": "does not match its type",
        f"{kind} {blob[:-1]}": "damaged",
        f"{kind} {blob[:-8]}": "truncated",
        f"{kind} {base64.b64encode(b'x').decode()}": "does not match its type",
        f"ssh-dss {blob}": "Unsupported key type",
        rsa_1024: "at least 2048 bits",
    }
    for text, reason in cases.items():
        with pytest.raises(InvalidKey, match=reason):
            parse_public_key(text)


def test_it_adds_lists_and_deletes_your_own_keys_with_an_audit_trail(tmp_path, team, bob):
    line, fingerprint, _ = keygen(tmp_path, "ed25519")
    client = login(bob)
    response = client.post("/t/acme/settings/ssh-keys/", {"public_key": line, "name": ""})
    assert response.status_code == 302
    key = SshKey.objects.get(user=bob)
    assert (key.name, key.fingerprint) == ("me@laptop", fingerprint)
    page = client.get("/t/acme/settings/ssh-keys/").content.decode()
    assert f"SHA256:{fingerprint}" in page
    again = client.post("/t/acme/settings/ssh-keys/", {"public_key": line})
    assert again.status_code == 400
    assert "You have added this key already." in again.content.decode()

    other = login(make_user("zed@example.com"))
    assert other.post(f"/t/acme/settings/ssh-keys/{key.public_id}/delete/").status_code == 404
    alice_client = login(team.memberships.get(role="admin").user)
    alice_client.post(f"/t/acme/settings/ssh-keys/{key.public_id}/delete/")
    assert SshKey.objects.filter(pk=key.pk).exists()  # not alice's key
    client.post(f"/t/acme/settings/ssh-keys/{key.public_id}/delete/")
    assert not SshKey.objects.filter(pk=key.pk).exists()
    actions = AuditEvent.objects.filter(resource_id=key.public_id).values_list("action", flat=True)
    assert sorted(actions) == ["ssh_key.added", "ssh_key.deleted"]


def test_it_shows_field_errors_for_a_bad_key(team, bob):
    response = login(bob).post("/t/acme/settings/ssh-keys/", {"public_key": "hello world!"})
    assert response.status_code == 400
    assert "not an OpenSSH public key" in response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("reap")
def test_it_gives_pods_the_keys_of_members_who_may_connect(tmp_path, team, alice, bob, parts):
    keys = {}
    for person, role in [(alice, None), (bob, None), (make_user("bill@example.com"), "billing")]:
        if role:
            Membership.objects.create(user=person, team=team, role=role)
        line, _, _ = keygen(tmp_path, "ed25519", comment=person.email)
        keys[person.email] = line
        SshKey.objects.create(
            user=person,
            name=person.email,
            key_type="ssh-ed25519",
            public_key=line,
            fingerprint=person.email,
        )
    outsider = make_user("out@example.com")
    SshKey.objects.create(user=outsider, name="o", key_type="x", public_key="x", fingerprint="o")
    fund(team)
    command = 'printf "%s\\n" "$PUBLIC_KEY" > /workspace/authorized_keys; exec sleep 600'
    request = deploy_request(parts["a40"], start_command=command)
    pod = services.deploy_pod(actor=alice, team=team, request=request)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING
    written = Path(settings.DATA_DIR) / "pods" / pod.public_id / "volume" / "authorized_keys"
    wait_for_file(written)
    assert written.read_text().splitlines() == [
        keys["alice@example.com"],
        keys["bob@example.com"],
    ]


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (path.exists() and path.read_text()):
        time.sleep(0.05)


def test_it_lets_a_public_key_the_user_set_win(team, alice, parts):
    SshKey.objects.create(
        user=alice, name="a", key_type="ssh-ed25519", public_key="ssh-ed25519 AAAA", fingerprint="a"
    )
    pod = Pod(team=team, machine=parts["machine"], public_id="p1", vcpu=1, memory_gb=1)
    pod.image, pod.container_disk_gb = "ubuntu:22.04", 5
    pod.env = [{"key": "PUBLIC_KEY", "value": "mine"}]
    assert lifecycle.build_spec(pod, "k").env["PUBLIC_KEY"] == "mine"
    pod.env = []
    assert lifecycle.build_spec(pod, "k").env["PUBLIC_KEY"] == "ssh-ed25519 AAAA"

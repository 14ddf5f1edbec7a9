"""Every change the connect pages make: one transaction, one audit row each."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from pods.connect import proxy
from pods.connect.crypto import encrypt
from pods.connect.spec import normalize_registry
from pods.connect.ssh import parse_public_key
from pods.models import Pod, ProxyAccess, RegistryCredential, SshKey
from teams import audit
from teams.models import Team


class ConnectError(Exception):
    """A refused change; `field` names the form field it belongs to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def set_proxy_access(*, actor, pod: Pod, access: str) -> Pod:
    if access not in ProxyAccess.values:
        raise ConnectError("Choose team only or public.", field="access")
    with transaction.atomic():
        pod = Pod.objects.select_for_update().select_related("team").get(pk=pod.pk)
        old, pod.proxy_access = pod.proxy_access, access
        pod.save(update_fields=["proxy_access"])
        audit.record(
            actor=actor,
            team=pod.team,
            action="pod.proxy_access_changed",
            resource_type="pod",
            resource_id=pod.public_id,
            details={"name": pod.name, "from": old, "to": access},
        )
    return pod


def hand_off_to_pod_host(*, actor, pod: Pod, target: proxy.Target, next_path: str) -> str:
    """The single-use, one-minute token that signs `actor` in on the pod's own host (the proxy
    there turns it into that host's cookie). A sign-in to a pod, so it is audited."""
    with transaction.atomic():
        audit.record(
            actor=actor,
            team=pod.team,
            action="pod.proxy_signed_in",
            resource_type="pod",
            resource_id=pod.public_id,
            details={"name": pod.name, "port": target.port},
        )
    return proxy.handoff_token(actor, target, next_path)


def add_ssh_key(*, actor, team: Team, name: str, public_key: str) -> SshKey:
    """Keys belong to the person; `team` is where they added it (for the audit log)."""
    key = parse_public_key(public_key)  # raises InvalidKey, a ValueError
    try:
        with transaction.atomic():
            row = SshKey.objects.create(
                user=actor,
                name=name.strip() or key.comment or key.key_type,
                key_type=key.key_type,
                public_key=key.line,
                fingerprint=key.fingerprint,
            )
            _key_audit(actor, team, row, "added")
    except IntegrityError as error:
        raise ConnectError("You have added this key already.", field="public_key") from error
    return row


@transaction.atomic
def delete_ssh_key(*, actor, team: Team, key: SshKey) -> None:
    _key_audit(actor, team, key, "deleted")
    key.delete()


def _key_audit(actor, team: Team, key: SshKey, verb: str) -> None:
    audit.record(
        actor=actor,
        team=team,
        action=f"ssh_key.{verb}",
        resource_type="ssh_key",
        resource_id=key.public_id,
        details={"name": key.name, "type": key.key_type, "fingerprint": key.fingerprint},
    )


def save_registry_credential(
    *, actor, team: Team, name: str, registry: str, username: str, password: str
) -> RegistryCredential:
    """The password is encrypted before it is stored and never leaves the console again
    except towards the container engine that pulls an image."""
    try:
        with transaction.atomic():
            credential = RegistryCredential.objects.create(
                team=team,
                name=name.strip(),
                registry=normalize_registry(registry),
                username=username.strip(),
                password_encrypted=encrypt(password),
                created_by=actor,
            )
            _registry_audit(actor, credential, "created")
    except IntegrityError as error:
        raise ConnectError("A credential with this name exists.", field="name") from error
    return credential


@transaction.atomic
def update_registry_credential(
    *, actor, credential: RegistryCredential, username: str, password: str
) -> RegistryCredential:
    """A new login for the same registry (the runpod SDK's updateRegistryAuth)."""
    credential.username = username.strip()
    credential.password_encrypted = encrypt(password)
    credential.save(update_fields=["username", "password_encrypted"])
    _registry_audit(actor, credential, "updated")
    return credential


@transaction.atomic
def delete_registry_credential(*, actor, credential: RegistryCredential) -> None:
    _registry_audit(actor, credential, "deleted")
    credential.delete()


def _registry_audit(actor, credential: RegistryCredential, verb: str) -> None:
    audit.record(
        actor=actor,
        team=credential.team,
        action=f"registry_credential.{verb}",
        resource_type="registry_credential",
        resource_id=credential.public_id,
        details={
            "name": credential.name,
            "registry": credential.registry,
            "username": credential.username,
        },
    )


def record_terminal(*, actor, pod: Pod, opened: bool, session: str, seconds: int = 0) -> None:
    """The web terminal's audit trail: when a session opened and closed, never keystrokes."""
    details = {"name": pod.name, "session": session}
    if not opened:
        details["seconds"] = seconds
    audit.record(
        actor=actor,
        team=pod.team,
        action="pod.terminal_opened" if opened else "pod.terminal_closed",
        resource_type="pod",
        resource_id=pod.public_id,
        details=details,
    )

"""Every write to accounts and teams: one atomic transaction and one audit event each.

Changes to a team's members lock the team row first, so two admins demoting each other at the
same moment cannot leave the team without an admin.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from teams import audit
from teams.models import ApiKey, Invite, Membership, Role, Team, hash_api_key, new_public_id


class TeamError(Exception):
    """A rule of the team was broken; the message is shown to the user as is."""


LAST_ADMIN_MESSAGE = (
    "A team needs at least one admin. Make another member an admin first, or keep this one."
)


def unique_team_slug(name: str) -> str:
    base = slugify(name)[:30] or "team"
    slug = base
    while Team.objects.filter(slug=slug).exists():
        slug = f"{base}-{new_public_id(5)}"
    return slug


def _lock_team(team: Team) -> Team:
    return Team.objects.select_for_update().get(pk=team.pk)


def _is_last_admin(membership: Membership) -> bool:
    if membership.role != Role.ADMIN:
        return False
    others = Membership.objects.admins().filter(team_id=membership.team_id)
    return not others.exclude(pk=membership.pk).exists()


@transaction.atomic
def create_personal_team(*, user) -> Team:
    """Every user gets a personal account at signup; they are its admin."""
    label = user.email.split("@")[0]
    team = Team.objects.create(
        name=f"{label}'s account", slug=unique_team_slug(label), is_personal=True
    )
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    audit.record(
        actor=user, team=team, action="team.created", resource_type="team", resource_id=team.slug
    )
    return team


@transaction.atomic
def convert_to_team(*, team: Team, actor, name: str) -> Team:
    """Turn a personal account into a team account. Irreversible; the slug stays the same so
    existing links and API clients keep working."""
    team = _lock_team(team)
    if not team.is_personal:
        raise TeamError(f"{team.name} is already a team.")
    old_name = team.name
    team.name = name.strip()
    team.is_personal = False
    team.converted_at = timezone.now()
    team.save(update_fields=["name", "is_personal", "converted_at"])
    audit.record(
        actor=actor,
        team=team,
        action="team.converted",
        resource_type="team",
        resource_id=team.slug,
        details={"old_name": old_name, "name": team.name},
    )
    return team


@transaction.atomic
def rename_team(*, team: Team, actor, name: str) -> Team:
    team = _lock_team(team)
    old_name, team.name = team.name, name.strip()
    if old_name == team.name:
        return team
    team.save(update_fields=["name"])
    audit.record(
        actor=actor,
        team=team,
        action="team.renamed",
        resource_type="team",
        resource_id=team.slug,
        details={"old_name": old_name, "name": team.name},
    )
    return team


@transaction.atomic
def add_member(*, team: Team, user, role: str, actor) -> Membership:
    """Staff adding someone directly (the admin site); customers use invite links."""
    team = _lock_team(team)
    if Membership.objects.filter(team=team, user=user).exists():
        raise TeamError(f"{user.email} is already a member of {team.name}.")
    membership = Membership.objects.create(team=team, user=user, role=role)
    audit.record(
        actor=actor,
        team=team,
        action="member.added",
        resource_type="member",
        resource_id=user.email,
        details={"role": role},
    )
    return membership


@transaction.atomic
def change_role(*, membership: Membership, actor, role: str) -> Membership:
    if role not in Role.values:
        raise TeamError(f"Unknown role {role!r}.")
    _lock_team(membership.team)
    membership = Membership.objects.select_related("user", "team").get(pk=membership.pk)
    old_role = membership.role
    if old_role == role:
        return membership
    if _is_last_admin(membership):
        raise TeamError(LAST_ADMIN_MESSAGE)
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        actor=actor,
        team=membership.team,
        action="member.role_changed",
        resource_type="member",
        resource_id=membership.user.email,
        details={"old_role": old_role, "role": role},
    )
    return membership


def _delete_membership(*, membership: Membership, actor, action: str) -> None:
    team = _lock_team(membership.team)
    membership = Membership.objects.select_related("user").filter(pk=membership.pk).first()
    if membership is None:
        raise TeamError("That person is no longer a member of this team.")
    if team.is_personal:
        raise TeamError("Nobody can leave or be removed from a personal account.")
    if _is_last_admin(membership):
        raise TeamError(LAST_ADMIN_MESSAGE)
    email, role = membership.user.email, membership.role
    _revoke_member_keys(user=membership.user, team=team, actor=actor)
    membership.delete()
    audit.record(
        actor=actor,
        team=team,
        action=action,
        resource_type="member",
        resource_id=email,
        details={"role": role},
    )


def _revoke_member_keys(*, user, team: Team, actor) -> None:
    """A member who leaves takes their keys with them, for good: the keys are deleted, so
    adding the person back later cannot bring a leaked key back to life."""
    for key in ApiKey.objects.created_by_member(user, team):
        _delete_key(key, actor=actor, reason=f"{user.email} left the team")


@transaction.atomic
def remove_member(*, membership: Membership, actor) -> None:
    _delete_membership(membership=membership, actor=actor, action="member.removed")


@transaction.atomic
def leave_team(*, membership: Membership) -> None:
    _delete_membership(membership=membership, actor=membership.user, action="member.left")


@transaction.atomic
def create_invite(*, team: Team, actor, role: str) -> Invite:
    if role not in Role.values:
        raise TeamError(f"Unknown role {role!r}.")
    if team.is_personal:
        raise TeamError("Convert your personal account into a team before inviting anyone.")
    invite = Invite.objects.create(team=team, role=role, created_by=actor)
    audit.record(
        actor=actor,
        team=team,
        action="invite.created",
        resource_type="invite",
        resource_id=invite.public_id,
        details={"role": role, "expires_at": invite.expires_at.isoformat()},
    )
    return invite


@transaction.atomic
def revoke_invite(*, invite: Invite, actor) -> Invite:
    invite = Invite.objects.select_for_update().select_related("team").get(pk=invite.pk)
    if not invite.is_usable:
        raise TeamError(f"This invite is already {invite.status}.")
    invite.revoked_at = timezone.now()
    invite.save(update_fields=["revoked_at"])
    audit.record(
        actor=actor,
        team=invite.team,
        action="invite.revoked",
        resource_type="invite",
        resource_id=invite.public_id,
        details={"role": invite.role},
    )
    return invite


def _usable_invite(token: str) -> Invite:
    invite = Invite.objects.select_for_update().select_related("team").filter(token=token).first()
    if invite is None:
        raise TeamError("This invite link is not valid.")
    if not invite.is_usable:
        raise TeamError(f"This invite link has {invite.status_phrase}.")
    return invite


@transaction.atomic
def accept_invite(*, token: str, user) -> Membership:
    """Join the invite's team with its role. Single use: the invite row is locked, so the same
    link opened twice at once lets only one person in."""
    invite = _usable_invite(token)
    if Membership.objects.filter(team=invite.team, user=user).exists():
        raise TeamError(
            f"You are already a member of {invite.team.name}. An invite cannot change your role;"
            " ask an admin of the team to do that."
        )
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, team=invite.team, role=invite.role)
    except IntegrityError:
        raise TeamError(f"You are already a member of {invite.team.name}.")
    invite.accepted_at = timezone.now()
    invite.accepted_by = user
    invite.save(update_fields=["accepted_at", "accepted_by"])
    audit.record(
        actor=user,
        team=invite.team,
        action="invite.accepted",
        resource_type="invite",
        resource_id=invite.public_id,
        details={"role": invite.role, "member": user.email},
    )
    return membership


@transaction.atomic
def create_api_key(*, team: Team, actor, name: str, permission: str) -> tuple[ApiKey, str]:
    """Returns the key and its secret. The secret is not stored and cannot be shown again."""
    if permission not in ApiKey.Permission.values:
        raise TeamError(f"Unknown permission {permission!r}.")
    return _new_api_key(
        team=team, actor=actor, name=name.strip(), permission=permission, created_by=actor
    )


@transaction.atomic
def set_api_key_enabled(*, key: ApiKey, actor, enabled: bool) -> ApiKey:
    key = ApiKey.objects.select_for_update().select_related("team").get(pk=key.pk)
    if key.is_enabled == enabled:
        return key
    key.is_enabled = enabled
    key.save(update_fields=["is_enabled"])
    audit.record(
        actor=actor,
        team=key.team,
        action="api_key.enabled" if enabled else "api_key.disabled",
        resource_type="api_key",
        resource_id=key.public_id,
        details={"name": key.name},
    )
    return key


@transaction.atomic
def issue_pod_api_key(*, team: Team, pod_public_id: str) -> tuple[ApiKey, str]:
    """The key a pod finds in RUNPOD_API_KEY for one run: read/write, acting in the pod's team
    with POD_KEY_ROLE. The caller revokes it when that run ends (stop, exit, failure,
    terminate). Returns the key and its secret, which only the pod's environment holds."""
    return _new_api_key(
        team=team,
        actor=None,
        name=f"Pod {pod_public_id}",
        permission=ApiKey.Permission.READ_WRITE,
        pod_public_id=pod_public_id,
    )


def _new_api_key(*, team: Team, actor, name: str, permission: str, **owner) -> tuple[ApiKey, str]:
    """Stores only the secret's hash; `owner` is created_by (a member's key) or pod_public_id."""
    secret = ApiKey.generate_secret()
    key = ApiKey.objects.create(
        team=team,
        name=name,
        permission=permission,
        prefix=secret[:12],
        key_hash=hash_api_key(secret),
        **owner,
    )
    details = {"name": key.name, "permission": permission, "prefix": key.prefix}
    if "pod_public_id" in owner:
        details["pod"] = owner["pod_public_id"]
    audit.record(
        actor=actor,
        team=team,
        action="api_key.created",
        resource_type="api_key",
        resource_id=key.public_id,
        details=details,
    )
    return key, secret


@transaction.atomic
def revoke_api_key(*, key: ApiKey, actor, reason: str = "") -> None:
    _delete_key(key, actor=actor, reason=reason)


def _delete_key(key: ApiKey, *, actor, reason: str) -> None:
    details = {"name": key.name}
    if key.pod_public_id:
        details["pod"] = key.pod_public_id
    if reason:
        details["reason"] = reason
    ApiKey.objects.filter(pk=key.pk).delete()
    audit.record(
        actor=actor,
        team=key.team,
        action="api_key.revoked",
        resource_type="api_key",
        resource_id=key.public_id,
        details=details,
    )

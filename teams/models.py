import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_public_id(length: int = 14) -> str:
    """Short public ids for URLs, like RunPod's `2s56cp0pof1rmt`."""
    return get_random_string(length, ID_ALPHABET)


def new_referral_code() -> str:
    return get_random_string(8, ID_ALPHABET)


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person. E-mail is the login; money and resources belong to teams, never to users."""

    username = None
    first_name = None
    last_name = None
    name = models.CharField(max_length=150, blank=True)
    email = models.EmailField("e-mail address", unique=True)
    referral_code = models.CharField(max_length=16, unique=True, default=new_referral_code)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]


class TeamQuerySet(models.QuerySet):
    def for_user(self, user) -> "TeamQuerySet":
        return self.filter(memberships__user=user)


class Team(models.Model):
    """An account: every user's personal one, or a team converted from it."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=40, unique=True)
    is_personal = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    converted_at = models.DateTimeField(null=True, blank=True)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dashboard", args=[self.slug])

    @property
    def kind(self) -> str:
        return "Personal account" if self.is_personal else "Team"


class Role(models.TextChoices):
    BASIC = "basic", "Basic"
    BILLING = "billing", "Billing"
    DEV = "dev", "Dev"
    ADMIN = "admin", "Admin"


class MembershipQuerySet(models.QuerySet):
    def admins(self) -> "MembershipQuerySet":
        return self.filter(role=Role.ADMIN)


class Membership(models.Model):
    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.BASIC)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["team__name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    def can(self, capability: str) -> bool:
        from teams.access import role_can

        return role_can(self.role, capability)


def default_invite_expiry():
    return timezone.now() + timedelta(days=settings.INVITE_VALID_DAYS)


class InviteQuerySet(models.QuerySet):
    def pending(self) -> "InviteQuerySet":
        return self.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())


class Invite(models.Model):
    """A single-use link that lets whoever opens it join a team with a role."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.CASCADE, related_name="invites")
    token = models.CharField(max_length=64, unique=True, default=secrets.token_urlsafe)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.BASIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=default_invite_expiry)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invite to {self.team} as {self.role}"

    def get_absolute_url(self) -> str:
        return reverse("invite_accept", args=[self.token])

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"

    @property
    def is_usable(self) -> bool:
        return self.status == "pending"

    @property
    def status_phrase(self) -> str:
        """Completes "This invite link has ..." for an unusable link."""
        return {
            "accepted": "already been used",
            "revoked": "been revoked by a team admin",
            "expired": f"expired ({self.expires_at:%Y-%m-%d %H:%M} UTC)",
        }.get(self.status, "not been used yet")


API_KEY_PREFIX = "rpa_"


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# What a pod's own key (RUNPOD_API_KEY) may do in its team: what the serverless worker protocol
# and the REST API need of a workload (read and write pods, templates, endpoints, jobs), never
# billing, members or API keys. A pod key is nobody's: it acts with this role, not a creator's.
POD_KEY_ROLE = Role.DEV


class ApiKeyQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "ApiKeyQuerySet":
        return self.filter(team=team)

    def created_by_member(self, user, team: Team) -> "ApiKeyQuerySet":
        return self.filter(team=team, created_by=user, pod_public_id="")


class ApiKey(models.Model):
    """A team's API key. Only a display prefix and a SHA-256 hash of the secret are kept.
    A member's key acts with its creator's current role; a pod's key (pod_public_id set,
    issued for one run of that pod and deleted when it stops) acts with POD_KEY_ROLE."""

    class Permission(models.TextChoices):
        READ_WRITE = "read_write", "Read/write"
        READ_ONLY = "read_only", "Read-only"

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    permission = models.CharField(
        max_length=10, choices=Permission.choices, default=Permission.READ_WRITE
    )
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    is_enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    # The public id of the pod this key was issued to (a string: teams knows nothing of pods).
    pod_public_id = models.CharField(max_length=14, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_read_only(self) -> bool:
        return self.permission == self.Permission.READ_ONLY

    @property
    def is_pod_key(self) -> bool:
        return bool(self.pod_public_id)

    @staticmethod
    def generate_secret() -> str:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)


class AuditEventQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "AuditEventQuerySet":
        return self.filter(team=team)

    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One state change: who did what to which resource, when and from where. Never edited."""

    team = models.ForeignKey(Team, models.SET_NULL, null=True, blank=True, related_name="+")
    team_name = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    resource_type = models.CharField(max_length=40, db_index=True)
    resource_id = models.CharField(max_length=64, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")

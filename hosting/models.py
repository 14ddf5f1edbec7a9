"""The supply side (SPEC.md, Hosting): host accounts vetted by staff, the machines they
register (with the specs they declared), per-machine agent tokens (stored hashed), the
downtime intervals missed heartbeats open, and booked maintenance."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.money import money_field
from pods.models import Machine
from teams.models import Team, new_public_id


class HostAccount(models.Model):
    """A team staff vetted by hand (KYC) to list machines."""

    class Kyc(models.TextChoices):
        PENDING = "pending", "Pending"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"

    team = models.OneToOneField(Team, models.CASCADE, related_name="host_account")
    is_host = models.BooleanField(default=False, help_text="Granted by staff after vetting")
    kyc_status = models.CharField(max_length=10, choices=Kyc.choices, default=Kyc.PENDING)
    kyc_checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kyc_checked_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Host account of {self.team}"

    @property
    def can_list(self) -> bool:
        return self.is_host and self.kyc_status == self.Kyc.VERIFIED


class HostedMachine(models.Model):
    """A host's machine: what the host declared at registration and where it is in review.
    PENDING (staff review) -> BURN_IN (offered to the host team only) -> LISTED; or REJECTED."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting staff review"
        BURN_IN = "burn_in", "Burn-in (your team only)"
        LISTED = "listed", "Listed"
        REJECTED = "rejected", "Rejected"

    class Os(models.TextChoices):
        UBUNTU_2204 = "ubuntu-22.04", "Ubuntu 22.04"
        UBUNTU_2004 = "ubuntu-20.04", "Ubuntu 20.04"
        OTHER = "other", "Other"

    machine = models.OneToOneField(Machine, models.PROTECT, related_name="hosting")
    team = models.ForeignKey(Team, models.PROTECT, related_name="host_machines")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    physical_cores = models.PositiveIntegerField()
    vram_gb_per_gpu = models.PositiveIntegerField()
    nvme_gb = models.PositiveIntegerField()
    network_mbps = models.PositiveIntegerField()
    os = models.CharField(max_length=20, choices=Os.choices)
    driver_version = models.CharField(max_length=20)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The agent's last report (GPU inventory, utilisation, driver, free disk), bounded.
    last_report = models.JSONField(default=dict, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return str(self.machine)

    @property
    def public_id(self) -> str:
        return self.machine.public_id


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class MachineToken(models.Model):
    """The agent's credential: one live token per machine; rotating revokes the old one (kept,
    so a revoked token is told apart from a wrong one)."""

    machine = models.ForeignKey(HostedMachine, models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.machine})"

    @staticmethod
    def generate_secret() -> str:
        return f"hm_{secrets.token_urlsafe(32)}"


class DowntimeQuerySet(models.QuerySet):
    def overlapping(self, start: datetime, end: datetime) -> DowntimeQuerySet:
        return self.filter(started_at__lt=end).exclude(ended_at__lte=start)


class Downtime(models.Model):
    """A stretch without heartbeats: opened when they stop (from the last one), closed by
    the next one. Open while ended_at is None."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    machine = models.ForeignKey(HostedMachine, models.CASCADE, related_name="downtimes")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = DowntimeQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # At most one open interval per machine, whatever two monitors do at once.
            models.UniqueConstraint(
                fields=["machine"], condition=models.Q(ended_at=None), name="one_open_downtime"
            )
        ]

    def __str__(self) -> str:
        return f"{self.machine} down from {self.started_at:%Y-%m-%d %H:%M}"


class Maintenance(models.Model):
    """Booked maintenance: its downtime does not count against reliability."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    machine = models.ForeignKey(HostedMachine, models.CASCADE, related_name="maintenances")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    immediate = models.BooleanField(default=False)
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    unlisted_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    relisted_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["starts_at"]

    def __str__(self) -> str:
        return f"{self.machine} maintenance {self.starts_at:%Y-%m-%d %H:%M}"


class Payout(models.Model):
    """Money staff paid a host team for a month's earnings (outside the console: bank
    transfer). Financial rows: never deleted, corrections are new rows."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.PROTECT, related_name="host_payouts")
    month = models.DateField(help_text="The first day of the month paid for")
    amount = money_field()
    reference = models.CharField(max_length=100, help_text="The bank transfer's reference")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-month", "-created_at"]

    def __str__(self) -> str:
        return f"Payout {self.amount} to {self.team} for {self.month:%Y-%m}"

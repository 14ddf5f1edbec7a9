"""What the API stores itself: the responses of POSTs sent with an Idempotency-Key."""

from django.db import models

from teams.models import Team


class IdempotentRequest(models.Model):
    """One (team, key) pair: the request's fingerprint and, once answered, its response.
    A row with `status_code` None is a request still being processed."""

    team = models.ForeignKey(Team, models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    # sha256 of the method, path and canonical JSON body: the same key with another body is
    # a client bug, refused rather than answered with the first request's response.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "key"], name="api_idempotency_team_key")
        ]
        # The expiry sweep deletes by age.
        indexes = [models.Index(fields=["created_at"], name="api_idempotency_created")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'pending'})"

"""`Idempotency-Key` on POST: the first request with a key is processed and its response kept;
the same key with the same body gets that response again (nothing is done twice), the same key
with another body is refused (422), and a repeat while the first is still running gets 409.

Keys are per team. A request that fails with a server error keeps no row, so it can be retried.
A key is remembered for IDEMPOTENCY_KEY_TTL_HOURS: after that the same key is a new request
(as Stripe does), and `expire_keys` (Celery beat, `manage.py expire_idempotency_keys`) deletes
the old rows.
"""

import hashlib
import json
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from api.exceptions import Conflict, Unprocessable
from api.models import IdempotentRequest
from teams.models import Team

HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_LENGTH = 200


def request_key(request: Request) -> str | None:
    if request.method != "POST":
        return None
    key = request.META.get(HEADER, "").strip()
    if not key:
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(
            {"Idempotency-Key": [f"Use at most {MAX_KEY_LENGTH} printable characters."]}
        )
    return key


def fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def expiry_cutoff(now: datetime | None = None) -> datetime:
    """Rows created before this are forgotten."""
    return (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def expire_keys(now: datetime | None = None) -> int:
    """Delete every row older than the TTL; returns how many went."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=expiry_cutoff(now)).delete()
    return deleted


def _create(team: Team, key: str, print_: str) -> IdempotentRequest | None:
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(team=team, key=key, fingerprint=print_)
    except IntegrityError:
        return None


def claim(team: Team, key: str, request: Request) -> IdempotentRequest | Response:
    """A new row to answer into, or the stored response to replay."""
    print_ = fingerprint(request)
    row = _create(team, key, print_)
    if row is None:
        # An expired row the sweep has not deleted yet does not count: the key is free again.
        stale = IdempotentRequest.objects.filter(team=team, key=key)
        if stale.filter(created_at__lt=expiry_cutoff()).delete()[0]:
            row = _create(team, key, print_)
    if row is not None:
        return row
    stored = IdempotentRequest.objects.filter(team=team, key=key).first()
    if stored is None:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    if stored.fingerprint != print_:
        raise Unprocessable("This Idempotency-Key was used with a different request.")
    if stored.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    return Response(
        stored.response, status=stored.status_code, headers={"Idempotent-Replayed": "true"}
    )


def settle(row: IdempotentRequest, response: Response) -> None:
    """Keep the answer; forget the key after a server error so the client may retry."""
    if response.status_code >= 500:
        row.delete()
        return
    row.status_code = response.status_code
    row.response = response.data
    row.save(update_fields=["status_code", "response"])

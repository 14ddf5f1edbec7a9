"""The host agent's heartbeat: `POST /api/v1/hosts/heartbeat` with `Authorization: Bearer
<machine token>`. Outside DRF and team API keys: the machine's own token is the only
credential. Everything in the body is the host's to choose, so it is bounded and reduced to
known fields before it is stored."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from hosting import services

MAX_BODY = 16 * 1024
MAX_GPUS = 16
MAX_TEXT = 64


def _text(value) -> str:
    return value.replace("\x00", "")[:MAX_TEXT] if isinstance(value, str) else ""


def _number(value, *, high: int) -> int | None:
    """A whole number from 0 to `high` (bools and floats are not: JSON floats are refused
    rather than rounded, and nothing here needs fractions)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        return None
    return value


def _gpu(item) -> dict:
    item = item if isinstance(item, dict) else {}
    return {
        "model": _text(item.get("model")),
        "utilization": _number(item.get("utilization"), high=100),
        "memory_used_mb": _number(item.get("memory_used_mb"), high=10_000_000),
        "memory_total_mb": _number(item.get("memory_total_mb"), high=10_000_000),
    }


def clean_report(body) -> dict | None:
    """The report as stored, or None when it is not a report at all."""
    if not isinstance(body, dict) or not isinstance(body.get("gpus", []), list):
        return None
    gpus = body.get("gpus", [])
    if len(gpus) > MAX_GPUS:
        return None
    return {
        "gpus": [_gpu(item) for item in gpus],
        "driver": _text(body.get("driver")),
        "free_disk_gb": _number(body.get("free_disk_gb"), high=100_000_000),
        "agent": _text(body.get("agent")),
    }


def _token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip()[:200] if scheme.lower() == "bearer" else ""


@csrf_exempt
@require_POST
def heartbeat(request: HttpRequest) -> JsonResponse:
    token = _token(request)
    if not token:
        return JsonResponse({"error": "A machine token is required."}, status=401)
    hosted, verdict = services.authenticate(token)
    if verdict == "wrong":
        return JsonResponse({"error": "Unknown machine token."}, status=401)
    if hosted is None:
        return JsonResponse({"error": "This machine token was revoked."}, status=403)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": "The report is too large."}, status=413)
    try:
        report = clean_report(json.loads(request.body or b"{}"))
    except (ValueError, RecursionError):
        report = None
    if report is None:
        return JsonResponse({"error": "The body must be a JSON heartbeat report."}, status=400)
    services.record_heartbeat(hosted=hosted, report=report)
    return JsonResponse({"ok": True, "machine": hosted.machine.public_id, "every": 30})

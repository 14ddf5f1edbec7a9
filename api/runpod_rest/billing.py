"""/v1/billing/pods, /v1/billing/endpoints and /v1/billing/networkvolumes as runpodctl 2.7.2's
`billing` commands call them (`internal/api/billing.go`: BillingOptions as query parameters,
[]BillingRecord back).

Records come from the ledger's usage rows (billing.usage posts one per resource, kind and
hour: source_type pod, worker or network_volume) plus the open hours not posted yet
(billing.usage.open_accruals), so the current hour is counted too. They are summed per
bucket (hour, day, week, month, year, in UTC) and, with `grouping`, per pod, endpoint or GPU
type (runpodctl sends its `--grouping gpuId` as gpuTypeId). `amount` is what was spent
(positive) and a JSON number: runpodctl decodes it into a Go float64, which refuses a string,
and RunPod sends numbers; `timeBilledMs` counts compute minutes. Amounts are summed as
Decimal and converted once, per record."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import Trunc
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.graphql import wire
from api.runpod_rest.base import RestViewSet
from billing.models import LedgerEntry
from billing.money import ZERO
from billing.usage import open_accruals
from pods.models import Pod
from serverless.models import Worker

Kind = LedgerEntry.Kind
SOURCES = {"pods": "pod", "endpoints": "worker", "networkvolumes": "network_volume"}
KINDS = {
    "pods": (Kind.USAGE_COMPUTE, Kind.USAGE_STORAGE),
    "endpoints": (Kind.USAGE_SERVERLESS,),
    "networkvolumes": (Kind.USAGE_STORAGE,),
}
TIMED = {Kind.USAGE_COMPUTE, Kind.USAGE_SERVERLESS}  # kinds whose minutes are compute time
GROUPINGS = {
    "pods": ("podId", "gpuTypeId"),
    "endpoints": ("endpointId", "podId", "gpuTypeId"),  # podId: the worker's pod
    "networkvolumes": ("networkVolumeId",),
}
BUCKETS = {"hour": 1, "day": 24, "week": 24 * 7, "month": 24 * 31, "year": 24 * 366}
MAX_BUCKETS = 2000
DEFAULT_DAYS = 30


def _time(params, name: str, default: datetime) -> datetime:
    text = params.get(name)
    if not text:
        return default
    try:
        parsed = parse_datetime(text.replace("Z", "+00:00"))
    except ValueError:  # well-formed but no such time (February 30th)
        parsed = None
    if parsed is None:
        raise ValidationError(f"{name}: an ISO 8601 time, like 2026-01-31T00:00:00Z.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bucket_start(moment: datetime, size: str) -> datetime:
    """The UTC bucket an hour falls in, as PostgreSQL's date_trunc gives it (weeks on Monday)."""
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if size == "hour":
        return moment
    day = moment.replace(hour=0)
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    return day.replace(day=1, month=1) if size == "year" else day


class Query:
    """A billing request's parameters, checked."""

    def __init__(self, resource: str, params) -> None:
        now = timezone.now()
        self.end = _time(params, "endTime", now)
        try:
            default_start = self.end - timedelta(days=DEFAULT_DAYS)
        except OverflowError:  # an endTime in year 1
            raise ValidationError("endTime: a time after 0001-01-31.") from None
        self.start = _time(params, "startTime", default_start)
        self.bucket = params.get("bucketSize") or "day"
        self.grouping = params.get("grouping") or None
        if self.bucket not in BUCKETS:
            raise ValidationError(f"bucketSize: one of {', '.join(BUCKETS)}.")
        if self.grouping not in (None, *GROUPINGS[resource]):
            raise ValidationError(f"grouping: one of {', '.join(GROUPINGS[resource])}.")
        if self.start >= self.end:
            raise ValidationError("startTime: before endTime.")
        hours = (self.end - self.start).total_seconds() / 3600
        if hours / BUCKETS[self.bucket] > MAX_BUCKETS:
            raise ValidationError(f"At most {MAX_BUCKETS} buckets: a larger bucketSize.")
        self.filters = {name: params[name] for name in GROUPINGS[resource] if params.get(name)}


def _posted(team, resource: str, query: Query) -> list[tuple]:
    """(bucket, source id, kind, amount, minutes) of the posted usage rows, summed in SQL."""
    rows = (
        LedgerEntry.objects.filter(
            team=team,
            kind__in=KINDS[resource],
            source_type=SOURCES[resource],
            period_start__gte=query.start,
            period_start__lt=query.end,
        )
        .annotate(bucket=Trunc("period_start", query.bucket, tzinfo=UTC))
        .values_list("bucket", "source_id", "kind")
        .annotate(total=Sum("amount"), minutes=Sum("minutes"))
        .order_by()
    )
    return list(rows)


def _open(team, resource: str, query: Query) -> list[tuple]:
    return [
        (_bucket_start(a.hour, query.bucket), a.source_id, a.kind, a.amount, a.minutes)
        for a in open_accruals(team)
        if a.source_type == SOURCES[resource]
        and a.kind in KINDS[resource]
        and query.start <= a.hour < query.end
    ]


def _dimensions(resource: str, source_ids: set[str]) -> dict[str, dict]:
    """Per source id, the ids a record may be grouped or filtered by (one query)."""
    if resource == "pods":
        pods = Pod.objects.filter(public_id__in=source_ids).values_list("public_id", "gpu_type_id")
        found = {pod: {"gpuTypeId": gpu} for pod, gpu in pods}
        return {s: {"podId": s, **found.get(s, {"gpuTypeId": None})} for s in source_ids}
    if resource == "endpoints":
        workers = Worker.objects.filter(public_id__in=source_ids).values_list(
            "public_id", "endpoint__public_id", "pod__public_id", "pod__gpu_type_id"
        )
        return {w: {"endpointId": e, "podId": p, "gpuTypeId": g} for w, e, p, g in workers}
    return {s: {"networkVolumeId": s} for s in source_ids}


def records(team, resource: str, query: Query) -> list[dict]:
    rows = _posted(team, resource, query) + _open(team, resource, query)
    dimensions = _dimensions(resource, {row[1] for row in rows})
    sums: dict[tuple, list] = defaultdict(lambda: [ZERO, 0])
    for bucket, source_id, kind, amount, minutes in rows:
        ids = dimensions.get(source_id, {})
        if any(ids.get(name) != value for name, value in query.filters.items()):
            continue
        key = (bucket, ids.get(query.grouping) if query.grouping else None)
        sums[key][0] += amount
        sums[key][1] += (minutes or 0) if kind in TIMED else 0
    ordered = sorted(sums, key=lambda key: (key[0], key[1] or ""))
    return [
        _record(bucket, query.grouping, group, *sums[(bucket, group)]) for bucket, group in ordered
    ]


def _record(bucket: datetime, grouping: str | None, group, amount: Decimal, minutes: int) -> dict:
    record = {
        "time": bucket.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "amount": wire.money(-amount),
        "timeBilledMs": minutes * 60_000,
    }
    if grouping:
        record[grouping] = group
    return record


class BillingViewSet(RestViewSet):
    capabilities = {"pods": "billing", "endpoints": "billing", "networkvolumes": "billing"}

    def _answer(self, resource: str) -> Response:
        query = Query(resource, self.request.query_params)
        return Response(records(self.team, resource, query))

    def pods(self, request):
        return self._answer("pods")

    def endpoints(self, request):
        return self._answer("endpoints")

    def networkvolumes(self, request):
        return self._answer("networkvolumes")

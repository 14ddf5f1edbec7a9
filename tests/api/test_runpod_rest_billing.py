"""/v1/billing/pods, /endpoints and /networkvolumes as runpodctl 2.7.2's `billing` commands call
them (`internal/api/billing.go`: BillingOptions as query parameters), from usage the real
metering posted (pods.metering.meter, serverless.metering.meter_workers) on PostgreSQL, decoded
with runpodctl's BillingRecord struct: `amount` a JSON number (a Go float64)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import usage
from billing.models import LedgerEntry
from pods.metering import meter
from pods.models import NetworkVolume
from serverless.metering import meter_workers
from serverless.models import Worker
from teams.models import Membership, Role, Team
from tests.api.runpodctl_structs import BILLING_RECORD, decode
from tests.api.test_api_keys import make_key
from tests.api.test_runpod_rest_endpoints import call, role_secret
from tests.pods.factories import posted_by
from tests.referrals.conftest import gpu_machine, running_pod
from tests.serverless.factories import a_worker, an_endpoint

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def three_hours(team):
    """Two pods on $5/h GPUs for three posted hours (T0 to T0+3h), the next hour open."""
    machine = gpu_machine("5.00")
    pods = [running_pod(team, machine), running_pod(team, machine, name="second")]
    meter(until=posted_by(T0 + 3 * HOUR, team))
    return pods


def billing(client, secret, what: str, **params):
    query = "&".join(f"{name}={value}" for name, value in params.items())
    response = call(client, "GET", f"/billing/{what}?{query}", secret)
    assert response.status_code == 200, response.content
    return decode(response.content, BILLING_RECORD, many=True)


def test_it_sums_pod_usage_per_hour_and_per_day(client, team, secret, three_hours):
    window = {"startTime": iso(T0), "endTime": iso(T0 + 3 * HOUR)}
    hourly = billing(client, secret, "pods", bucketSize="hour", **window)
    assert hourly == [
        {"time": iso(T0 + n * HOUR), "amount": 10.0, "timeBilledMs": 2 * 3_600_000}
        for n in range(3)
    ]
    # runpodctl billing pods --bucket-size day --grouping podId
    daily = billing(client, secret, "pods", bucketSize="day", grouping="podId", **window)
    first, second = three_hours
    assert sorted(daily, key=lambda r: r["podId"]) == sorted(
        [
            {
                "time": iso(T0.replace(hour=0)),
                "amount": 15.0,
                "timeBilledMs": 3 * 3_600_000,
                "podId": pod.public_id,
            }
            for pod in (first, second)
        ],
        key=lambda r: r["podId"],
    )
    only = billing(client, secret, "pods", bucketSize="day", podId=first.public_id, **window)
    assert [r["amount"] for r in only] == [15.0]
    by_gpu = billing(client, secret, "pods", bucketSize="day", grouping="gpuTypeId", **window)
    assert by_gpu[0]["gpuTypeId"] == first.gpu_type_id and by_gpu[0]["amount"] == 30.0


def test_the_open_hour_is_counted_too(client, team, secret, three_hours):
    posted = -sum(LedgerEntry.objects.filter(kind="usage_compute").values_list("amount", flat=True))
    accrued = -sum(line.amount for line in usage.open_accruals(team))
    assert posted == Decimal("30") and accrued > 0
    end = T0 + 24 * HOUR
    [day] = billing(client, secret, "pods", startTime=iso(T0), endTime=iso(end))
    assert day["amount"] == float(posted + accrued)


def test_endpoint_usage_is_named_by_endpoint(client, team, secret):
    endpoint = an_endpoint(team)
    worker, _ = a_worker(endpoint)
    Worker.objects.filter(pk=worker.pk).update(
        ready_at=T0, price=Decimal("1.185"), state=Worker.State.IDLE
    )
    meter_workers(until=T0 + HOUR)
    records = billing(
        client,
        secret,
        "endpoints",
        startTime=iso(T0),
        endTime=iso(T0 + HOUR),
        bucketSize="hour",
        grouping="endpointId",
    )
    assert records == [
        {
            "time": iso(T0),
            "amount": 1.185,
            "timeBilledMs": 3_600_000,
            "endpointId": endpoint.public_id,
        }
    ]
    # runpodctl billing serverless --grouping podId: the worker's pod (none for this one)
    by_pod = billing(client, secret, "endpoints", startTime=iso(T0), grouping="podId")
    assert [(r["amount"], r["podId"]) for r in by_pod] == [(1.185, None)]
    other = billing(client, secret, "endpoints", startTime=iso(T0), endpointId="nope")
    assert other == []


def test_network_volume_usage(client, team, secret):
    machine = gpu_machine("5.00")
    volume = NetworkVolume.objects.create(
        team=team, name="v", size_gb=1000, data_center=machine.data_center, metered_until=T0
    )
    running_pod(team, machine, status="exited")  # funds for the volume; a stopped pod costs 0
    meter(until=posted_by(T0 + 2 * HOUR, team))
    rows = LedgerEntry.objects.filter(source_type="network_volume", source_id=volume.public_id)
    spent = -sum(rows.values_list("amount", flat=True))
    assert spent > 0
    records = billing(
        client, secret, "networkvolumes", startTime=iso(T0), endTime=iso(T0 + 2 * HOUR)
    )
    assert records == [{"time": iso(T0.replace(hour=0)), "amount": float(spent), "timeBilledMs": 0}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("bucketSize=minute", "bucketSize"),
        ("grouping=endpointId", "grouping"),
        ("startTime=yesterday", "startTime"),
        ("startTime=2026-11-03T00:00:00Z&endTime=2026-11-02T00:00:00Z", "startTime"),
        ("bucketSize=hour&startTime=2020-01-01T00:00:00Z", "buckets"),
    ],
)
def test_bad_parameters_are_refused_by_name(client, team, secret, params, message):
    response = call(client, "GET", f"/billing/pods?{params}", secret)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_query_count_does_not_grow_with_usage(client, team, secret):
    machine = gpu_machine("5.00")
    running_pod(team, machine)
    meter(until=posted_by(T0 + 2 * HOUR, team))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            billing(client, secret, "pods", startTime=iso(T0), grouping="gpuTypeId")
        return len(queries)

    count()  # the key's first use records last_used_at
    before = count()
    for n in range(4):
        running_pod(team, machine, name=f"more {n}", since=T0 + 2 * HOUR)
    meter(until=posted_by(T0 + 4 * HOUR, team))
    assert count() == before


def test_billing_needs_the_billing_capability(client, team):
    assert call(client, "GET", "/billing/pods", role_secret(team, Role.BILLING)).status_code == 200
    for role in (Role.BASIC, Role.DEV):
        response = call(client, "GET", "/billing/endpoints", role_secret(team, role))
        assert response.status_code == 403


def test_another_teams_usage_is_not_shown(client, team, charlie, three_hours):
    other = Team.objects.create(name="Other", slug="other", is_personal=False)
    Membership.objects.create(user=charlie, team=other, role=Role.ADMIN)
    outsider = make_key(other, charlie)[1]
    assert billing(client, outsider, "pods", startTime=iso(T0)) == []

"""The agent heartbeat API, downtime from missed heartbeats, metering on an offline machine,
and the agent itself (`python -m pods.agent`) against a live server on loopback."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from hosting import services
from hosting.models import Downtime, HostedMachine, MachineToken
from pods.metering import meter
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import fund
from tests.pods.test_metering import charged, running_pod

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
URL = "/api/v1/hosts/heartbeat"
REPORT = {
    "gpus": [
        {"model": "NVIDIA A40", "utilization": 87, "memory_used_mb": 100, "memory_total_mb": 46068}
    ],
    "driver": "550.54.15",
    "free_disk_gb": 3100,
}


def beat(token: str, body=REPORT) -> tuple[int, dict]:
    response = Client().post(
        URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    return response.status_code, response.json()


def test_a_heartbeat_with_the_machines_token_is_stored(listed):
    token = services.rotate_token(actor=None, hosted=listed)
    assert beat(token) == (200, {"ok": True, "machine": listed.public_id, "every": 30})
    listed.refresh_from_db()
    assert listed.last_report["gpus"][0]["utilization"] == 87
    assert listed.last_report["driver"] == "550.54.15"
    assert listed.last_report["free_disk_gb"] == 3100
    # Only the hash is kept.
    assert not MachineToken.objects.filter(token_hash=token).exists()
    assert token not in json.dumps(list(MachineToken.objects.values()), default=str)


def test_wrong_and_revoked_tokens_are_refused(listed):
    old = services.rotate_token(actor=None, hosted=listed)
    new = services.rotate_token(actor=None, hosted=listed)
    assert beat("hm_" + "x" * 43)[0] == 401
    assert beat(old) == (403, {"error": "This machine token was revoked."})
    assert beat(new)[0] == 200
    services.reject(actor=None, hosted=listed)
    assert beat(new)[0] == 403
    no_header = Client().post(URL, "{}", content_type="application/json")
    assert no_header.status_code == 401


def test_missed_heartbeats_open_a_downtime_interval_and_a_heartbeat_closes_it(listed):
    services.record_heartbeat(hosted=listed, report={}, now=T0)
    assert services.check_heartbeats(now=T0 + timedelta(seconds=90)) == 0
    assert services.check_heartbeats(now=T0 + timedelta(seconds=91)) == 1
    listed.machine.refresh_from_db()
    assert not listed.machine.is_online
    [down] = Downtime.objects.all()
    assert (down.started_at, down.ended_at) == (T0, None)
    assert services.check_heartbeats(now=T0 + timedelta(seconds=200)) == 0  # still one interval
    services.record_heartbeat(hosted=listed, report={}, now=T0 + timedelta(minutes=30))
    down.refresh_from_db()
    listed.machine.refresh_from_db()
    assert down.ended_at == T0 + timedelta(minutes=30) and listed.machine.is_online
    actions = AuditEvent.objects.filter(action__in=["hosting.offline", "hosting.online"])
    # The fixture's first heartbeat brought the new machine online; then off and on again.
    assert list(actions.order_by("created_at").values_list("action", flat=True)) == [
        "hosting.online",
        "hosting.offline",
        "hosting.online",
    ]


def test_an_offline_machines_pods_accrue_no_charge(listed, team):
    fund(team, "100")
    pod = running_pod(team, listed.machine, gpu_count=1)
    services.record_heartbeat(hosted=listed, report={}, now=T0)
    meter(until=T0 + timedelta(minutes=2))
    before = charged(pod)
    assert before > 0
    services.check_heartbeats(now=T0 + timedelta(minutes=2))
    meter(until=T0 + timedelta(minutes=62))
    assert charged(pod) == before  # an hour offline: nothing
    services.record_heartbeat(hosted=listed, report={}, now=T0 + timedelta(minutes=62))
    meter(until=T0 + timedelta(minutes=65))
    assert charged(pod) > before  # back online: charged again


def test_the_machine_page_shows_the_token_once_and_the_downtime(alice, listed):
    client = login(alice)
    url = reverse("hosting_machine", args=[listed.team.slug, listed.public_id])
    client.post(reverse("hosting_machine_token", args=[listed.team.slug, listed.public_id]))
    first = client.get(url).content.decode()
    assert 'data-testid="new-token"' in first
    assert 'data-testid="new-token"' not in client.get(url).content.decode()
    now = datetime.now(UTC)
    Downtime.objects.create(
        machine=listed, started_at=now - timedelta(minutes=45), ended_at=now - timedelta(minutes=15)
    )
    page = client.get(url).content.decode()
    assert 'data-testid="downtime"' in page and "30.00" in page


@pytest.mark.django_db(transaction=True)
def test_the_agent_sends_heartbeats_to_the_console(live_server, team):
    from tests.hosting.conftest import register
    from tests.pods.factories import catalogue

    services.set_host(actor=None, team=team, is_host=True)
    services.set_kyc(actor=None, team=team, status="verified")
    hosted = register(team, catalogue())
    token = services.rotate_token(actor=None, hosted=hosted)
    agent = [sys.executable, "-m", "pods.agent", "--url", live_server.url, "--token"]
    done = subprocess.run(
        [*agent, token, "--count", "2", "--interval", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("heartbeat 200") == 2
    hosted = HostedMachine.objects.get(pk=hosted.pk)
    assert hosted.last_heartbeat_at is not None and hosted.last_report["free_disk_gb"] > 0
    refused = subprocess.run([*agent, "hm_wrong"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "heartbeat 401" in refused.stdout


def test_the_management_commands_run_the_monitor_and_the_sweep(listed):
    out = StringIO()
    HostedMachine.objects.filter(pk=listed.pk).update(last_heartbeat_at=T0)
    call_command("check_heartbeats", stdout=out)
    call_command("maintenance_sweep", stdout=out)
    assert "1 machine(s) went offline." in out.getvalue()
    assert "'unlisted': 0" in out.getvalue()
    assert Downtime.objects.get().started_at == T0


def test_a_healthy_fleet_costs_the_monitor_two_queries(host, parts, django_assert_num_queries):
    from tests.hosting.conftest import register

    for n in range(5):
        hosted = register(host, parts, name=f"box-{n}")
        services.start_burn_in(actor=None, hosted=hosted)
        services.record_heartbeat(hosted=hosted, report={}, now=T0)
    with django_assert_num_queries(2):  # stale machines; machines whose score may change
        assert services.check_heartbeats(now=T0 + timedelta(seconds=30)) == 0

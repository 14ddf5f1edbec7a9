"""Lifecycle services without processes (on-commit work not run): rules, audit, timers, GPUs."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse
from django.utils import timezone

from pods import lifecycle, live, services
from pods.models import Machine, Pod
from pods.pricing import network_volume_per_hour
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import deploy_request, fund, stopped_pod


def test_it_frees_gpus_when_a_pod_stops_and_offers_zero_gpus_when_they_are_taken(
    team, alice, parts
):
    fund(team)
    mine = stopped_pod(team, parts["machine"], gpu_count=2, requested_gpu_count=2)
    assert parts["machine"].free_gpus() == 4
    other = stopped_pod(team, parts["machine"], gpu_count=3, status=Pod.Status.RUNNING)
    with pytest.raises(services.PodError) as refused:
        services.start_pod(actor=alice, pod=mine)
    assert refused.value.code == "gpus_taken"
    assert "Start it with 0 GPUs" in str(refused.value)
    services.start_pod(actor=alice, pod=mine, zero_gpus=True)
    mine.refresh_from_db()
    assert mine.status == Pod.Status.STARTING and mine.gpu_count == 0
    assert mine.requested_gpu_count == 2
    assert mine.price().compute == 0
    assert other.machine.free_gpus() == 1


def test_it_offers_start_with_zero_gpus_on_the_pod_page(team, alice, parts):
    fund(team)
    pod = stopped_pod(team, parts["machine"], gpu_count=2, requested_gpu_count=2)
    stopped_pod(team, parts["machine"], gpu_count=4, status=Pod.Status.RUNNING)
    client = login(alice)
    response = client.post(reverse("pod_start", args=[team.slug, pod.public_id]))
    assert response["Location"].endswith("?zero_gpus=offer")
    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="zero-gpu-offer"' in page and 'name="zero_gpus" value="1"' in page


def test_it_audits_every_lifecycle_change(team, alice, parts, django_capture_on_commit_callbacks):
    fund(team)
    pod = services.deploy_pod(actor=alice, team=team, request=deploy_request(parts["a40"]))
    Pod.objects.filter(pk=pod.pk).update(status=Pod.Status.RUNNING)
    services.rename_pod(actor=alice, pod=pod, name="renamed")
    services.schedule_pod(actor=alice, pod=pod, action="stop", hours=Decimal(2))
    services.stop_pod(actor=alice, pod=pod)
    Pod.objects.filter(pk=pod.pk).update(status=Pod.Status.EXITED)
    services.terminate_pod(actor=alice, pod=pod)
    actions = list(
        AuditEvent.objects.filter(resource_id=pod.public_id)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "pod.deployed",
        "pod.renamed",
        "pod.stop_scheduled",
        "pod.stopped",
        "pod.terminated",
    ]


def test_it_refuses_actions_that_do_not_fit_the_status(team, alice, parts):
    pod = stopped_pod(team, parts["machine"])
    with pytest.raises(services.PodError, match="cannot be stopped"):
        services.stop_pod(actor=alice, pod=pod)
    with pytest.raises(services.PodError, match="Only a running pod"):
        services.restart_pod(actor=alice, pod=pod)
    with pytest.raises(services.PodError, match="1 to 100"):
        services.rename_pod(actor=alice, pod=pod, name="  ")


def test_it_stops_and_terminates_pods_when_their_timers_are_due(team, alice, parts):
    fund(team)
    running = stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    parked = stopped_pod(team, parts["machine"])
    services.schedule_pod(actor=alice, pod=running, action="stop", hours=Decimal(2))
    services.schedule_pod(actor=alice, pod=parked, action="terminate", hours=Decimal("0.5"))
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        lifecycle.run_timers(timezone.now())
    running.refresh_from_db()
    parked.refresh_from_db()
    assert running.status == Pod.Status.RUNNING
    assert parked.status == Pod.Status.STOPPING and parked.next_status == "terminated"
    with time_machine.travel(timezone.now() + timedelta(hours=2, minutes=1)):
        lifecycle.run_timers(timezone.now())
    running.refresh_from_db()
    assert running.status == Pod.Status.STOPPING and running.stop_at is None
    assert running.events.filter(message="Stopped by its timer.").exists()


def test_it_refuses_a_timer_out_of_range(team, alice, parts):
    pod = stopped_pod(team, parts["machine"])
    with pytest.raises(services.PodError, match="between a minute and 30 days"):
        services.schedule_pod(actor=alice, pod=pod, action="stop", hours=Decimal(0))


def test_it_prices_compute_and_storage_exactly(team, parts):
    pod = stopped_pod(
        team,
        parts["machine"],
        gpu_count=2,
        volume_gb=20,
        container_disk_gb=10,
        status=Pod.Status.RUNNING,
    )
    price = pod.price()
    assert price.compute == Decimal("1.58")
    # 20 GB x $0.10 + 10 GB x $0.10 per 720 h month
    assert price.storage == Decimal("0.0041666667")
    stopped = pod.price(status=Pod.Status.EXITED)
    assert stopped.compute == 0 and stopped.storage == Decimal("0.0055555556")  # 20 x $0.20
    assert network_volume_per_hour(999) == Decimal("0.0971250000")
    assert network_volume_per_hour(1000) == Decimal("0.0694444444")


def test_it_reports_the_teams_burn_rate_to_billing(team, parts):
    from billing.burn import burn_rate

    stopped_pod(team, parts["machine"], gpu_count=1, volume_gb=0, status=Pod.Status.RUNNING)
    stopped_pod(team, parts["machine"], gpu_count=1, volume_gb=0, status=Pod.Status.TERMINATED)
    # $0.79 of GPU plus 5 GB of container disk at $0.10/GB/month; the terminated pod costs 0
    assert burn_rate(team) == Decimal("0.7906944444")


def test_it_pushes_changes_to_the_team_and_pod_groups_on_commit(
    team, alice, parts, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    pod = stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(live.pod_group(pod.public_id), channel)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.stop_pod(actor=alice, pod=pod)
    push = callbacks[0]  # the push; the halt task is the next callback
    push()
    message = async_to_sync(layer.receive)(channel)
    assert message == {"type": "pod.changed", "pod": pod.public_id, "status": "stopping"}


def test_it_places_on_the_fullest_machine_that_fits(team, alice, parts):
    fund(team, "1000")
    roomy = Machine.objects.create(
        name="a40-big",
        data_center=parts["dc"],
        cloud_type="SECURE",
        gpu_type=parts["a40"],
        gpu_count=8,
        vcpu=64,
        memory_gb=256,
        disk_gb=8000,
    )
    first = services.deploy_pod(actor=alice, team=team, request=deploy_request(parts["a40"]))
    assert first.machine == parts["machine"]
    big = services.deploy_pod(
        actor=alice, team=team, request=deploy_request(parts["a40"], gpu_count=6)
    )
    assert big.machine == roomy
    assert big.vcpu == 6 * 8 and big.memory_gb == 6 * 32

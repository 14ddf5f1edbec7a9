"""50 deploys at once, on PostgreSQL, from 50 threads with their own connections: placement never
gives out more GPUs than a machine has, and the credit hold never lets the team's pods cost more
per hour than its balance covers."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from billing.services import get_account
from pods import services
from pods.models import Machine, Pod
from pods.services import team_burn_rate
from tests.pods.factories import deploy_request, fund

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]

DEPLOYS = 50


def deploy_all(team, user, requests) -> tuple[list[Pod], list[str]]:
    barrier = threading.Barrier(len(requests))
    pods, errors = [], []
    lock = threading.Lock()

    def one(request):
        try:
            barrier.wait()
            pod = services.deploy_pod(actor=user, team=team, request=request)
            with lock:
                pods.append(pod)
        except services.PodError as error:
            with lock:
                errors.append(str(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return pods, errors


def test_it_never_places_more_gpus_than_a_machine_has(team, alice, parts):
    assert connection.vendor == "postgresql"
    fund(team, "1000")
    second = Machine.objects.create(
        name="a40-box-2",
        data_center=parts["dc"],
        cloud_type="SECURE",
        gpu_type=parts["a40"],
        gpu_count=3,
        vcpu=24,
        memory_gb=96,
        disk_gb=3000,
    )
    requests = [
        deploy_request(parts["a40"], gpu_count=1 + i % 2, start_command="exec sleep 600")
        for i in range(DEPLOYS)
    ]
    pods, errors = deploy_all(team, alice, requests)
    assert len(pods) + len(errors) == DEPLOYS
    for machine in (parts["machine"], second):
        placed = Pod.objects.filter(machine=machine).holding()
        assert sum(p.gpu_count for p in placed) <= machine.gpu_count
    assert sum(p.gpu_count for p in Pod.objects.all()) >= 6  # 7 GPUs, sizes 1 and 2
    assert all("Not enough free A40" in error for error in errors)


def test_it_never_holds_more_than_the_balance_covers(team, alice, parts):
    big = Machine.objects.create(
        name="a40-farm",
        data_center=parts["dc"],
        cloud_type="SECURE",
        gpu_type=parts["a40"],
        gpu_count=64,
        vcpu=512,
        memory_gb=4096,
        disk_gb=64000,
    )
    fund(team, "4")  # each pod costs $0.79/h + storage: five fit in one hour of $4
    requests = [
        deploy_request(parts["a40"], volume_gb=0, start_command="exec sleep 600")
        for _ in range(DEPLOYS)
    ]
    pods, errors = deploy_all(team, alice, requests)
    balance = get_account(team).balance
    assert len(pods) == 5
    assert team_burn_rate(team) <= balance == Decimal("4")
    assert (
        Pod.objects.filter(machine=big).count()
        + Pod.objects.filter(machine=parts["machine"]).count()
        == 5
    )
    assert len(errors) == DEPLOYS - 5
    assert all("balance" in error.lower() for error in errors), errors[:3]

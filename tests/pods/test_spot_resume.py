"""A stopped pod starting again on its machine takes its GPUs by the deploy rule (SPEC.md, Pods:
spot pods yield to a higher bid or an on-demand start): a higher bid that finds no free GPUs
preempts the lowest lower bids, just enough of them; an equal or lower bid preempts nothing."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from pods import services
from pods.models import Pod
from teams.models import AuditEvent
from tests.pods.factories import deploy_request, fund, stopped_pod
from tests.pods.test_spot import spot

pytestmark = pytest.mark.usefixtures("reap")


def parked(team, machine, gpus: int = 2, **fields) -> Pod:
    return stopped_pod(team, machine, gpu_count=0, requested_gpu_count=gpus, **fields)


def status(pod: Pod) -> str:
    return Pod.objects.get(pk=pod.pk).status


def resume(alice, pod, bid: str, capture) -> Pod:
    with capture(execute=True):
        return services.resume_spot_pod(actor=alice, pod=pod, bid_per_gpu=Decimal(bid))


def test_a_higher_bid_resume_preempts_the_lowest_lower_bids(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    machine = parts["machine"]  # 4 x A40, all held
    cheap, middle = spot(team, machine, "0.30"), spot(team, machine, "0.40")
    dear = spot(team, machine, "0.60", gpus=2)
    pod = parked(team, machine, gpus=2)
    resume(alice, pod, "0.50", django_capture_on_commit_callbacks)
    pod.refresh_from_db()
    assert (pod.status, pod.gpu_count, pod.bid_per_gpu) == ("running", 2, Decimal("0.50"))
    assert [status(p) for p in (cheap, middle, dear)] == ["preempted", "preempted", "running"]
    assert "Preempted by a higher spot bid" in Pod.objects.get(pk=cheap.pk).status_reason
    preempted = AuditEvent.objects.filter(action="pod.preempted")
    assert sorted(e.resource_id for e in preempted) == sorted([cheap.public_id, middle.public_id])


def test_a_resume_takes_free_gpus_before_preempting_anyone(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    machine = parts["machine"]
    low = spot(team, machine, "0.30", gpus=2)
    pod = parked(team, machine, gpus=2)
    resume(alice, pod, "0.50", django_capture_on_commit_callbacks)
    assert (status(pod), status(low)) == ("running", "running")
    assert not AuditEvent.objects.filter(action="pod.preempted").exists()


@pytest.mark.parametrize("bid", ["0.35", "0.29"])
def test_an_equal_or_lower_bid_resume_preempts_nothing_and_changes_nothing(
    team, alice, parts, django_capture_on_commit_callbacks, bid
):
    fund(team)
    holder = spot(team, parts["machine"], "0.35", gpus=4)
    pod = parked(team, parts["machine"], gpus=1)
    with pytest.raises(services.PodError) as refused:
        resume(alice, pod, bid, django_capture_on_commit_callbacks)
    assert refused.value.code == "gpus_taken"
    assert status(holder) == "running"
    pod.refresh_from_db()
    assert (pod.status, pod.pricing, pod.bid_per_gpu) == ("exited", "on_demand", None)
    assert not AuditEvent.objects.filter(resource_type="pod").exists()


def test_an_on_demand_start_preempts_spot_pods_as_a_deploy_does(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    machine = parts["machine"]
    low, high = spot(team, machine, "0.30", gpus=2), spot(team, machine, "0.90", gpus=2)
    on_demand = stopped_pod(team, machine, gpu_count=0, requested_gpu_count=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.start_pod(actor=alice, pod=on_demand)
    assert [status(p) for p in (on_demand, low, high)] == ["running", "preempted", "running"]
    assert "Preempted by an on-demand pod" in Pod.objects.get(pk=low.pk).status_reason


def test_an_on_demand_holder_is_never_preempted_by_a_resume(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    holder = stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=4)
    pod = parked(team, parts["machine"], gpus=1)
    with pytest.raises(services.PodError, match="GPUs this pod needs"):
        resume(alice, pod, "5.00", django_capture_on_commit_callbacks)
    assert status(holder) == "running"


def test_a_resume_refused_for_funds_preempts_nobody(
    team, alice, parts, django_capture_on_commit_callbacks
):
    victim = spot(team, parts["machine"], "0.30", gpus=4)  # the team has no credit
    pod = parked(team, parts["machine"], gpus=1)
    with pytest.raises(services.PodError) as refused:
        resume(alice, pod, "0.50", django_capture_on_commit_callbacks)
    assert refused.value.code == "funds"
    assert status(victim) == "running"
    assert not AuditEvent.objects.filter(action="pod.preempted").exists()


def test_a_pod_already_yielding_its_gpus_is_not_counted_again(
    team, alice, parts, django_capture_on_commit_callbacks
):
    """While preempted pods stop (up to 5 s, in a worker), their GPUs are promised to the pod
    that preempted them: a resume then cannot free them a second time."""
    fund(team)
    machine = parts["machine"]
    first, second, third, fourth = (spot(team, machine, "0.30") for _ in range(4))
    with django_capture_on_commit_callbacks(execute=False):  # the halts have not run yet
        services.deploy_pod(
            actor=alice, team=team, request=deploy_request(parts["a40"], gpu_count=2)
        )
    assert [status(p) for p in (first, second)] == ["stopping", "stopping"]
    pod = parked(team, machine, gpus=3)
    with pytest.raises(services.PodError) as refused:
        resume(alice, pod, "0.50", django_capture_on_commit_callbacks)
    assert refused.value.code == "gpus_taken"
    assert [status(p) for p in (third, fourth)] == ["running", "running"]
    resume(alice, parked(team, machine, gpus=2), "0.50", django_capture_on_commit_callbacks)
    assert [status(p) for p in (third, fourth)] == ["preempted", "preempted"]
    staying = Pod.objects.filter(machine=machine, status__in=Pod.HOLDING).exclude(status="stopping")
    assert sum(p.gpu_count for p in staying) == machine.gpu_count


@pytest.mark.django_db(transaction=True)
def test_concurrent_resumes_and_deploys_never_hold_more_gpus_than_the_machine_has(
    team, alice, parts
):
    """Eight stopped pods resume at rising bids while four spot deploys arrive, all at once on
    their own connections, over four GPUs held by 0.30 bids: every call ends in a pod or a
    PodError (a PostgreSQL deadlock would raise something else), and never more than four GPUs
    are held."""
    assert connection.vendor == "postgresql"
    fund(team, "1000")
    machine = parts["machine"]
    for _ in range(4):
        spot(team, machine, "0.30")
    stopped = [parked(team, machine, gpus=1 + i % 2) for i in range(8)]
    calls = [
        lambda p=p, i=i: services.resume_spot_pod(
            actor=alice, pod=p, bid_per_gpu=Decimal("0.40") + Decimal(i) / 100
        )
        for i, p in enumerate(stopped)
    ]
    calls += [
        lambda i=i: services.deploy_pod(
            actor=alice,
            team=team,
            request=deploy_request(
                parts["a40"],
                gpu_count=1,
                pricing=Pod.Pricing.SPOT,
                bid_per_gpu=Decimal("0.35") + Decimal(i) / 10,
                start_command="exec sleep 600",
            ),
        )
        for i in range(4)
    ]
    outcomes = run_at_once(calls)
    assert len(outcomes) == len(calls)
    unexpected = [o for o in outcomes if not isinstance(o, Pod | services.PodError)]
    assert unexpected == []
    holding = Pod.objects.filter(machine=machine, status__in=Pod.HOLDING)
    assert sum(p.gpu_count for p in holding) <= machine.gpu_count
    assert any(isinstance(o, Pod) for o in outcomes)
    # The 0.30 pods made room first: any bid in the race outbids them, and the lowest go first.
    preempted = AuditEvent.objects.filter(action="pod.preempted")
    assert Decimal("0.30") in {Decimal(e.details["bid_per_gpu"]) for e in preempted}


def run_at_once(calls) -> list:
    barrier = threading.Barrier(len(calls))
    outcomes, lock = [], threading.Lock()

    def one(call):
        try:
            barrier.wait()
            result = call()
        except Exception as error:  # noqa: BLE001 - the test reports whatever came out
            result = error
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes

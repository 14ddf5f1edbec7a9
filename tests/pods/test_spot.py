"""Spot pods yield their GPUs to on-demand deploys and higher bids (SPEC.md, Pods)."""

import time
from decimal import Decimal

import pytest
from django.core import mail

from pods import services
from pods.models import Pod
from pods.runtime import get_backend
from teams.models import AuditEvent
from tests.pods.factories import deploy_request, fund, stopped_pod
from tests.pods.test_runtime_process import IGNORES_SIGTERM, wait_for

pytestmark = pytest.mark.usefixtures("reap")


def spot(team, machine, bid: str, gpus: int = 1, **fields) -> Pod:
    """A spot pod row holding GPUs (no process: placement rules only)."""
    values = dict(status=Pod.Status.RUNNING, pricing=Pod.Pricing.SPOT, bid_per_gpu=Decimal(bid))
    values.update(gpu_count=gpus, **fields)
    return stopped_pod(team, machine, **values)


def deploy(team, user, gpu, capture, **overrides) -> Pod:
    with capture(execute=True):
        return services.deploy_pod(actor=user, team=team, request=deploy_request(gpu, **overrides))


def test_an_on_demand_deploy_preempts_the_lowest_bids_first(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    machine = parts["machine"]  # 4 x A40
    cheap = spot(team, machine, "0.30")
    middle = spot(team, machine, "0.40")
    dear = spot(team, machine, "0.50", gpus=2)
    pod = deploy(team, alice, parts["a40"], django_capture_on_commit_callbacks, gpu_count=2)
    statuses = {p.pk: Pod.objects.get(pk=p.pk).status for p in (cheap, middle, dear)}
    assert statuses == {
        cheap.pk: Pod.Status.PREEMPTED,
        middle.pk: Pod.Status.PREEMPTED,
        dear.pk: Pod.Status.RUNNING,
    }
    assert Pod.objects.get(pk=pod.pk).machine == machine
    assert "Preempted by an on-demand pod" in Pod.objects.get(pk=cheap.pk).status_reason
    assert AuditEvent.objects.filter(action="pod.preempted").count() == 2


def test_a_higher_bid_preempts_only_lower_bids(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    machine = parts["machine"]
    low = spot(team, machine, "0.30", gpus=2)
    spot(team, machine, "0.60", gpus=2)
    deploy(
        team,
        alice,
        parts["a40"],
        django_capture_on_commit_callbacks,
        gpu_count=2,
        pricing=Pod.Pricing.SPOT,
        bid_per_gpu=Decimal("0.45"),
    )
    assert Pod.objects.get(pk=low.pk).status == Pod.Status.PREEMPTED


def test_a_lower_bid_preempts_nothing_and_says_why(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    holder = spot(team, parts["machine"], "0.60", gpus=4)
    with pytest.raises(services.PodError, match="Not enough free A40"):
        deploy(
            team,
            alice,
            parts["a40"],
            django_capture_on_commit_callbacks,
            pricing=Pod.Pricing.SPOT,
            bid_per_gpu=Decimal("0.30"),
        )
    assert Pod.objects.get(pk=holder.pk).status == Pod.Status.RUNNING


def test_on_demand_pods_are_never_preempted(team, alice, parts, django_capture_on_commit_callbacks):
    fund(team)
    holder = stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=4)
    with pytest.raises(services.PodError, match="Not enough free A40"):
        deploy(team, alice, parts["a40"], django_capture_on_commit_callbacks)
    assert Pod.objects.get(pk=holder.pk).status == Pod.Status.RUNNING


def test_a_refused_deploy_preempts_nobody(team, alice, parts, django_capture_on_commit_callbacks):
    victim = spot(team, parts["machine"], "0.30", gpus=4)  # the team has no credit
    with pytest.raises(services.PodError):
        deploy(team, alice, parts["a40"], django_capture_on_commit_callbacks)
    assert Pod.objects.get(pk=victim.pk).status == Pod.Status.RUNNING


@pytest.mark.slow
def test_a_spot_pod_ignoring_sigterm_is_killed_5_s_after_preemption(
    team, alice, bob, parts, django_capture_on_commit_callbacks
):
    fund(team)
    victim = deploy(
        team,
        bob,
        parts["a40"],
        django_capture_on_commit_callbacks,
        gpu_count=4,
        pricing=Pod.Pricing.SPOT,
        bid_per_gpu=Decimal("0.30"),
        start_command=IGNORES_SIGTERM,
    )
    victim.refresh_from_db()
    assert victim.status == Pod.Status.RUNNING
    backend = get_backend("process")
    wait_for(lambda: "ready" in backend.read_logs(victim.runtime_handle).text)
    started = time.monotonic()
    winner = deploy(team, alice, parts["a40"], django_capture_on_commit_callbacks)
    elapsed = time.monotonic() - started
    victim.refresh_from_db()
    assert victim.status == Pod.Status.PREEMPTED
    assert victim.exit_code == 137  # SIGKILL: it ignored the SIGTERM
    assert "got SIGTERM" in backend.read_logs(victim.runtime_handle).text
    assert 5 <= elapsed < 9
    winner.refresh_from_db()
    assert winner.status == Pod.Status.RUNNING
    assert mail.outbox[-1].to == [bob.email]
    assert "preempted" in mail.outbox[-1].subject

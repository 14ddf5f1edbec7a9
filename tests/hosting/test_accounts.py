"""Host accounts (staff vet a team by hand and record KYC in the admin, audited) and machine
registration: SPEC.md's minimum specs checked, staff review, burn-in for the host's own team,
then public listing; the host's minimum spot bid."""

from decimal import Decimal

import pytest
from django.urls import reverse

from hosting import services
from hosting.models import HostAccount, HostedMachine
from pods.models import CloudType, Machine
from pods.scheduling import Need, PlacementError, place
from teams.models import AuditEvent
from tests.conftest import login
from tests.hosting.conftest import register
from tests.pods.test_machine_admin import staff

FORM = {
    "name": "box-1",
    "cloud_type": "SECURE",
    "data_center": "EU-RO-1",
    "gpu_type": "NVIDIA A40",
    "gpu_count": "2",
    "vram_gb_per_gpu": "48",
    "physical_cores": "16",
    "ram_gb": "128",
    "nvme_gb": "4000",
    "network_mbps": "10000",
    "os": "ubuntu-22.04",
    "driver_version": "550.54.15",
    "min_bid_per_gpu": "0.30",
}


def test_it_grants_hosting_and_records_kyc_from_the_admin(team, parts):
    admin = staff()
    added = admin.post(
        reverse("admin:hosting_hostaccount_add"), {"team": team.pk, "notes": "ID checked"}
    )
    assert added.status_code == 302
    account = HostAccount.objects.get(team=team)
    assert not account.is_host  # recorded, not yet granted
    url = reverse("admin:hosting_hostaccount_changelist")
    for action in ("grant", "kyc_verified"):
        response = admin.post(url, {"action": action, "_selected_action": [account.pk]})
        assert response.status_code == 302
    account.refresh_from_db()
    assert account.is_host and account.kyc_status == "verified" and account.can_list
    assert account.kyc_checked_by.email == "staff@example.com"
    actions = AuditEvent.objects.filter(team=team).values_list("action", flat=True)
    assert {"hosting.applied", "hosting.granted", "hosting.kyc"} <= set(actions)


def test_a_team_that_is_not_vetted_cannot_register(alice, team, parts):
    client = login(alice)
    page = client.get(reverse("hosting", args=[team.slug]))
    assert b'data-testid="not-a-host"' in page.content
    response = client.post(reverse("hosting_machine_new", args=[team.slug]), FORM)
    assert b'data-testid="not-vetted"' in response.content
    assert not HostedMachine.objects.exists()
    services.set_host(actor=None, team=team, is_host=True)  # vetted, KYC still pending
    client.post(reverse("hosting_machine_new", args=[team.slug]), FORM)
    assert not HostedMachine.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gpu_type", "NVIDIA GeForce RTX 4090", None),  # eligible: no error expected
        ("vram_gb_per_gpu", "24", "has 48 GB of VRAM"),
        ("physical_cores", "7", "At least 4 physical cores per GPU: 8 for 2 GPUs."),
        ("ram_gb", "107", "total VRAM + 12 GB: 108 GB"),
        ("nvme_gb", "1999", "1 TB of NVMe per GPU: 2000 GB"),
        ("network_mbps", "999", "At least 1 Gbps"),
        ("os", "ubuntu-20.04", "Ubuntu 22.04 is required."),
        ("driver_version", "535.104", "driver 550 or newer"),
    ],
)
def test_it_checks_each_minimum_spec(alice, host, parts, field, value, message):
    data = {**FORM, field: value}
    if field == "gpu_type":
        data["vram_gb_per_gpu"] = "24"
        data["ram_gb"] = "60"
    response = login(alice).post(reverse("hosting_machine_new", args=[host.slug]), data)
    if message is None:
        assert response.status_code == 302, response.context["form"].errors
        return
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not HostedMachine.objects.exists()


def test_ram_of_exactly_total_vram_plus_12_gb_passes(alice, host, parts):
    data = {**FORM, "ram_gb": "108", "physical_cores": "8", "nvme_gb": "2000"}
    response = login(alice).post(reverse("hosting_machine_new", args=[host.slug]), data)
    assert response.status_code == 302


def test_gpus_below_an_rtx_30xx_are_refused(alice, host, parts):
    from pods.models import GpuType

    GpuType.objects.create(
        id="NVIDIA RTX A2000",
        display_name="RTX A2000",
        memory_gb=6,
        secure_price=Decimal("0.18"),
        community_price=Decimal("0.12"),
        min_bid=Decimal("0.06"),
    )
    data = {**FORM, "gpu_type": "NVIDIA RTX A2000", "vram_gb_per_gpu": "6", "ram_gb": "24"}
    response = login(alice).post(reverse("hosting_machine_new", args=[host.slug]), data)
    assert "RTX A2000 is below the minimum (RTX 30xx / A4000)." in response.content.decode()


def need(team, parts, **kw) -> Need:
    values = dict(cloud_type=CloudType.SECURE, data_center=parts["dc"], gpu_type=parts["a40"])
    values.update(gpu_count=2, team=team, **kw)
    return Need(**values)


def test_a_registered_machine_waits_for_staff_then_burns_in_for_its_host_only(
    alice, host, parts, charlie
):
    response = login(alice).post(reverse("hosting_machine_new", args=[host.slug]), FORM)
    hosted = HostedMachine.objects.get()
    assert response["Location"] == reverse("hosting_machine", args=[host.slug, hosted.public_id])
    parts["machine"].delete()  # the platform's own A40: only the host's machine remains
    other = charlie.memberships.get().team
    machine = hosted.machine
    assert (machine.is_listed, machine.host_team, machine.min_bid_per_gpu) == (
        False,
        host,
        Decimal("0.30"),
    )
    services.record_heartbeat(hosted=hosted, report={})
    with pytest.raises(PlacementError):
        place(need(host, parts))
    admin = staff()
    url = reverse("admin:hosting_hostedmachine_changelist")
    admin.post(url, {"action": "approve", "_selected_action": [hosted.pk]})
    hosted.refresh_from_db()
    assert hosted.state == "burn_in"
    assert place(need(host, parts)).machine == machine  # the self-rental test
    with pytest.raises(PlacementError):
        place(need(other, parts))
    assert b'data-testid="burn-in"' in login(alice).get(response["Location"]).content
    admin.post(url, {"action": "list_publicly", "_selected_action": [hosted.pk]})
    assert place(need(other, parts)).machine == machine
    actions = set(AuditEvent.objects.filter(team=host).values_list("action", flat=True))
    assert {"hosting.registered", "hosting.burn_in", "hosting.listed"} <= actions


def test_spot_bids_under_the_hosts_minimum_never_reach_its_machine(listed, parts, charlie):
    parts["machine"].delete()
    other = charlie.memberships.get().team
    with pytest.raises(PlacementError):
        place(need(other, parts, bid_per_gpu=Decimal("0.29")))
    assert place(need(other, parts, bid_per_gpu=Decimal("0.30"))).machine == listed.machine
    assert place(need(other, parts)).machine == listed.machine  # on demand: platform price


def test_another_teams_machine_is_a_404(listed, charlie):
    mine = charlie.memberships.get().team
    url = reverse("hosting_machine", args=[mine.slug, listed.public_id])
    assert login(charlie).get(url).status_code == 404
    assert Machine.objects.filter(host_team=listed.team).count() == 1


def test_the_overview_lists_the_hosts_machines(alice, listed):
    page = login(alice).get(reverse("hosting", args=[listed.team.slug])).content.decode()
    assert listed.public_id in page and "100.00 %" in page


def test_register_refuses_a_team_without_verified_kyc(team, parts):
    services.set_host(actor=None, team=team, is_host=True)
    with pytest.raises(services.HostingError):
        register(team, parts)


def test_a_deploy_by_the_host_team_lands_on_its_machine_in_burn_in(alice, host, parts, charlie):
    from pods.services import PodError, deploy_pod
    from tests.pods.factories import deploy_request, fund

    parts["machine"].delete()
    hosted = register(host, parts)
    services.start_burn_in(actor=None, hosted=hosted)
    services.record_heartbeat(hosted=hosted, report={})
    fund(host, "20")
    pod = deploy_pod(actor=alice, team=host, request=deploy_request(parts["a40"], volume_gb=0))
    assert pod.machine == hosted.machine
    renter = charlie.memberships.get().team
    fund(renter, "20")
    with pytest.raises(PodError, match="No A40 machines"):
        deploy_pod(actor=charlie, team=renter, request=deploy_request(parts["a40"], volume_gb=0))


def test_a_spot_resume_on_a_host_machine_bids_at_least_the_hosts_minimum(listed, team, alice):
    from pods.services import PodError, resume_spot_pod
    from tests.pods.factories import fund, stopped_pod

    fund(team, "20")
    pod = stopped_pod(team, listed.machine)  # A40: the type's floor $0.28, the host's $0.30
    with pytest.raises(PodError, match=r"on this machine is \$0.30/h"):
        resume_spot_pod(actor=alice, pod=pod, bid_per_gpu=Decimal("0.29"))
    started = resume_spot_pod(actor=alice, pod=pod, bid_per_gpu=Decimal("0.30"))
    assert started.bid_per_gpu == Decimal("0.30")


def test_the_wizard_shows_a_machine_in_burn_in_to_its_host_team_only(host, parts, charlie):
    from pods.availability import Where, gpu_offers

    parts["machine"].delete()
    hosted = register(host, parts)
    services.start_burn_in(actor=None, hosted=hosted)
    services.record_heartbeat(hosted=hosted, report={})
    gpu = parts["a40"].pk
    assert gpu_offers(Where(team=host))[gpu].free == hosted.machine.gpu_count
    renter = charlie.memberships.get().team
    assert gpu not in gpu_offers(Where(team=renter))

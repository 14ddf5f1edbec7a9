"""What runpodctl adds to /graphql, sent as runpodctl sends it (documents from
tests/api/runpodctl_documents.py with its variables): templates, data centres, the spot resume
with a bid and the user's SSH keys through updateUserSettings. Real keys, PostgreSQL, the
console's services; outsiders NOT_FOUND, roles FORBIDDEN, bad input changes nothing."""

from decimal import Decimal

import pytest

from billing.models import BillingAccount
from pods.connect.services import add_ssh_key
from pods.models import Pod, PodTemplate, SshKey
from teams.models import ApiKey, AuditEvent, Membership, Role
from teams.services import issue_pod_api_key
from tests.api.matrix import PUBLIC_KEY
from tests.api.runpodctl_documents import RUNPODCTL_DOCUMENTS
from tests.api.test_api_keys import make_key
from tests.api.test_graphql import error_code, post
from tests.api.test_team_api import OTHER_KEY
from tests.conftest import make_user
from tests.pods.factories import fund, stopped_pod


def document(needle: str) -> str:
    return next(d for d in RUNPODCTL_DOCUMENTS if needle in d)


def gql(query: str, secret: str, variables: dict | None = None) -> dict:
    """As runpodctl posts: `variables` always present (an object or null)."""
    response = post({"query": query, "variables": variables}, secret=secret)
    assert response.status_code == 200, response.content
    return response.json()


def member_secret(team, role: str, permission=ApiKey.Permission.READ_WRITE) -> str:
    user = make_user(f"{role}-{permission}@example.com")
    Membership.objects.create(user=user, team=team, role=role)
    return make_key(team, user, permission)[1]


# Templates -----------------------------------------------------------------------------------


@pytest.fixture
def templates(team, charlie):
    official = PodTemplate.objects.create(team=None, name="PyTorch", image="pytorch:2")
    labelled = [{"port": 8888, "protocol": "http", "label": "Jupyter"}]
    own = PodTemplate.objects.create(team=team, name="Own", image="ubuntu", ports=labelled)
    theirs = charlie.memberships.get().team
    public = PodTemplate.objects.create(team=theirs, name="Shared", image="x", is_public=True)
    private = PodTemplate.objects.create(team=theirs, name="Secret", image="y")
    return {"official": official, "own": own, "public": public, "private": private}


def test_pod_templates_official_and_others(templates, secret):
    query = document("podTemplates(")
    names = {}
    for flag in (True, False, None):
        result = gql(query, secret, {"input": None if flag is None else {"isRunpod": flag}})
        names[flag] = [t["name"] for t in result["data"]["podTemplates"]]
    assert names == {
        True: ["PyTorch"],
        False: ["Own", "Shared"],
        None: ["Own", "PyTorch", "Shared"],
    }


def test_one_template_with_its_port_labels_and_never_another_teams_private_one(templates, secret):
    query = document("podTemplate(")
    found = gql(query, secret, {"id": templates["own"].public_id})["data"]["podTemplate"]
    assert found["ports"] == "8888/http" and found["isRunpod"] is False
    assert found["portsConfig"] == [{"port": "8888", "name": "Jupyter"}]
    result = gql(query, secret, {"id": templates["private"].public_id})
    assert error_code(result) == "NOT_FOUND" and result["data"]["podTemplate"] is None
    assert error_code(gql(query, secret, {"id": "a\x00b"})) == "NOT_FOUND"


def test_myself_pod_templates_are_the_teams_own(templates, secret):
    result = gql(document("GetTemplateForPortLabels"), secret)
    assert [t["id"] for t in result["data"]["myself"]["podTemplates"]] == [
        templates["own"].public_id
    ]


# Data centres --------------------------------------------------------------------------------


def test_data_centers_show_free_gpus_per_type(parts, team, secret):
    stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=3)
    result = gql(document("dataCenters"), secret)
    assert result["data"]["dataCenters"] == [
        {
            "id": "EU-RO-1",
            "name": "Bucharest",
            "location": "RO",
            "gpuAvailability": [
                {"gpuTypeId": "NVIDIA A40", "displayName": "A40", "stockStatus": "Low"},
                {
                    "gpuTypeId": "NVIDIA GeForce RTX 4090",
                    "displayName": "RTX 4090",
                    "stockStatus": "Low",
                },
            ],
        },
        {"id": "US-TX-3", "name": "Dallas", "location": "US", "gpuAvailability": []},
    ]


# podBidResume --------------------------------------------------------------------------------


def bid(secret: str, pod: Pod, amount, gpus: int = 1) -> dict:
    variables = {"podId": pod.public_id, "bidPerGpu": amount, "gpuCount": gpus}
    return gql(document("podBidResume"), secret, variables)


def test_a_bid_resume_starts_the_pod_as_spot_at_that_bid(parts, team, alice):
    fund(team)
    key, secret = make_key(team, alice)
    pod = stopped_pod(team, parts["machine"])
    result = bid(secret, pod, 0.35)
    assert "errors" not in result, result
    assert result["data"]["podBidResume"]["desiredStatus"] == "RUNNING"
    assert result["data"]["podBidResume"]["costPerHr"] == float(pod_price(pod))
    pod.refresh_from_db()
    assert (pod.pricing, pod.bid_per_gpu, pod.status) == ("spot", Decimal("0.35"), "starting")
    events = AuditEvent.objects.filter(resource_id=pod.public_id).order_by("id")
    assert [e.action for e in events] == ["pod.bid_changed", "pod.started"]
    assert all(e.details["api_key"] == key.public_id and e.actor == alice for e in events)
    assert events[0].details["bid_per_gpu"] == "0.3500000000"


def pod_price(pod: Pod) -> Decimal:
    return Pod.objects.get(pk=pod.pk).price().total


@pytest.mark.parametrize("amount", [0.1, 0, -1, 123456789.5, 0.00001])
def test_a_bid_the_wizard_would_refuse_changes_nothing(parts, team, secret, amount):
    fund(team)
    pod = stopped_pod(team, parts["machine"])
    result = bid(secret, pod, amount)
    assert error_code(result) == "BAD_USER_INPUT", result
    pod.refresh_from_db()
    assert (pod.pricing, pod.bid_per_gpu, pod.status) == ("on_demand", None, "exited")
    assert not AuditEvent.objects.filter(resource_id=pod.public_id).exists()


def test_a_cpu_pod_cannot_bid(parts, team, secret):
    fund(team)
    pod = stopped_pod(team, parts["cpu_machine"], gpu_count=0, requested_gpu_count=0)
    assert error_code(bid(secret, pod, 0.5)) == "BAD_USER_INPUT"
    pod.refresh_from_db()
    assert pod.pricing == "on_demand"


def test_bids_are_for_the_teams_devs_and_admins_only(parts, team, charlie):
    fund(team)
    pod = stopped_pod(team, parts["machine"])
    assert error_code(bid(member_secret(team, Role.BASIC), pod, 0.5)) == "FORBIDDEN"
    read_only = member_secret(team, Role.ADMIN, ApiKey.Permission.READ_ONLY)
    assert error_code(bid(read_only, pod, 0.5)) == "FORBIDDEN"
    outsider = make_key(charlie.memberships.get().team, charlie)[1]
    assert error_code(bid(outsider, pod, 0.5)) == "NOT_FOUND"
    pod.refresh_from_db()
    assert (pod.pricing, pod.status) == ("on_demand", "exited")


def test_a_higher_bid_resume_preempts_the_lower_spot_pod_holding_the_gpus(parts, team, secret):
    fund(team)
    held = dict(status=Pod.Status.RUNNING, pricing=Pod.Pricing.SPOT, gpu_count=4)
    holder = stopped_pod(team, parts["machine"], bid_per_gpu=Decimal("0.30"), **held)
    pod = stopped_pod(team, parts["machine"], gpu_count=0)
    equal = bid(secret, pod, 0.30)
    assert error_code(equal) == "BAD_USER_INPUT"
    assert "GPUs this pod needs are free" in equal["errors"][0]["message"]
    assert Pod.objects.get(pk=holder.pk).status == Pod.Status.RUNNING
    result = bid(secret, pod, 0.45)
    assert result["data"]["podBidResume"]["desiredStatus"] == "RUNNING", result
    holder.refresh_from_db()
    assert (holder.status, holder.next_status) == ("stopping", "preempted")
    assert "higher spot bid" in holder.status_reason
    assert AuditEvent.objects.get(action="pod.preempted").resource_id == holder.public_id


# updateUserSettings: the person's SSH keys ---------------------------------------------------


def set_keys(secret: str, text: str) -> dict:
    return gql(document("updateUserSettings"), secret, {"input": {"pubKey": text}})


def test_update_user_settings_replaces_the_persons_ssh_keys(team, alice):
    key, secret = make_key(team, alice)
    assert set_keys(secret, f"{PUBLIC_KEY}\n\n{OTHER_KEY}\n") == {
        "data": {"updateUserSettings": {"id": str(alice.pk)}}
    }
    assert SshKey.objects.filter(user=alice).count() == 2
    listed = gql(document("myself { id pubKey"), secret)["data"]["myself"]["pubKey"]
    assert listed.splitlines() == [PUBLIC_KEY, OTHER_KEY]
    set_keys(secret, OTHER_KEY)  # runpodctl's remove-key rewrites the list without it
    assert [k.public_key for k in SshKey.objects.filter(user=alice)] == [OTHER_KEY]
    actions = AuditEvent.objects.filter(resource_type="ssh_key").order_by("id")
    assert [e.action for e in actions] == ["ssh_key.added", "ssh_key.added", "ssh_key.deleted"]
    assert all(e.details["api_key"] == key.public_id for e in actions)


def test_one_bad_key_line_refuses_the_whole_update(team, alice, secret):
    add_ssh_key(actor=alice, team=team, name="", public_key=OTHER_KEY)
    result = set_keys(secret, f"{PUBLIC_KEY}\nssh-ed25519 AAAAbroken")
    assert error_code(result) == "BAD_USER_INPUT" and "line 2" in result["errors"][0]["message"]
    assert [k.public_key for k in SshKey.objects.filter(user=alice)] == [OTHER_KEY]


def test_pod_keys_read_only_keys_and_billing_members_change_no_ssh_keys(team):
    _, pod_secret = issue_pod_api_key(team=team, pod_public_id="podx")
    read_only = member_secret(team, Role.DEV, ApiKey.Permission.READ_ONLY)
    billing = member_secret(team, Role.BILLING)
    for secret in (pod_secret, read_only, billing):
        assert error_code(set_keys(secret, PUBLIC_KEY)) == "FORBIDDEN"
    assert not SshKey.objects.exists()


# The rest of runpodctl's calls ---------------------------------------------------------------


def test_runpodctl_user_and_create_pod_with_its_variables(parts, team, alice, secret):
    fund(team)
    BillingAccount.objects.filter(team=team).update(low_balance_alert_threshold=Decimal("5"))
    me = gql(document("spendLimit"), secret)["data"]["myself"]
    assert me["email"] == "alice@example.com" and me["clientBalance"] == 100.0
    assert me["spendLimit"] == 80.0 and me["notifyLowBalance"] is True
    variables = {  # CreatePodGQLInput as runpodctl marshals it (omitempty fields left out)
        "cloudType": "SECURE",
        "containerDiskInGb": 5,
        "env": [{"key": "A", "value": "1"}],
        "gpuCount": 1,
        "gpuTypeId": "NVIDIA A40",
        "imageName": "python:3.11-slim",
        "name": "ctl",
        "ports": "8888/http",
        "startSsh": True,
        "volumeInGb": 1,
        "minCudaVersion": "12.4",
        "compliance": ["GDPR"],
    }
    query = next(d for d in RUNPODCTL_DOCUMENTS if "createPod" in d and "machine {" in d)
    result = gql(query, secret, {"input": variables})
    assert "errors" not in result, result
    created = result["data"]["podFindAndDeployOnDemand"]
    assert created["env"] == ["A=1"] and created["machine"]["location"] == "EU-RO-1"
    assert Pod.objects.get(public_id=created["id"]).team == team


def label_input(template: PodTemplate, labels: list | None) -> dict:
    """UpdateTemplatePortLabels' input as runpodctl builds it from myself.podTemplates."""
    value = {
        "id": template.public_id,
        "name": template.name,
        "imageName": template.image,
        "containerDiskInGb": template.container_disk_gb,
        "containerRegistryAuthId": "",
        "dockerArgs": "",
        "env": [],
        "ports": "8888/http,22/tcp",
        "volumeInGb": template.volume_gb,
        "isPublic": False,
        "isServerless": False,
        "startJupyter": False,
        "startSsh": True,
        "advancedStart": False,
        "readme": "",
        "volumeMountPath": template.volume_mount_path,
    }
    if labels is not None:
        value["portsConfig"] = labels
    return {"input": value}


def test_runpodctl_labels_a_templates_ports(team, alice, secret):
    template = PodTemplate.objects.create(team=team, name="Lab", image="ubuntu")
    query = document("UpdateTemplatePortLabels")
    labels = [{"port": "8888", "name": "Jupyter Lab"}]
    assert "errors" not in gql(query, secret, label_input(template, labels))
    template.refresh_from_db()
    assert template.ports == [
        {"port": 8888, "protocol": "http", "label": "Jupyter Lab"},
        {"port": 22, "protocol": "tcp"},
    ]
    assert "errors" not in gql(query, secret, label_input(template, None))
    template.refresh_from_db()
    assert template.port_label(8888) == "Jupyter Lab"  # kept when portsConfig is absent
    for bad in ([{"port": "9999", "name": "x"}], [{"port": "8888", "name": " "}]):
        result = gql(query, secret, label_input(template, bad))
        assert error_code(result) == "BAD_USER_INPUT", result
    template.refresh_from_db()
    assert template.port_label(8888) == "Jupyter Lab"
    assert AuditEvent.objects.filter(action="template.updated").count() == 2

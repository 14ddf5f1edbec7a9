"""Resolvers of /graphql. Each root field asks api.access (the role matrix of teams.access) for
the capability it needs, in the team the key belongs to, and changes state only through the
services the console's pages use (pods.services, pods.connect.services): one write path, audited.
Mutations refuse read-only keys."""

from ariadne import MutationType, ObjectType, QueryType
from django.db import transaction
from rest_framework.exceptions import NotFound, PermissionDenied

from api.access import api_membership, request_api_key
from api.authentication import PodPrincipal
from api.graphql import inputs, wire
from api.graphql.inputs import InputError
from billing.models import BillingAccount
from billing.money import ZERO
from billing.services import get_account
from pods import services
from pods.connect import services as connect
from pods.connect.services import ConnectError
from pods.connect.ssh import InvalidKey, parse_public_key
from pods.models import (
    CloudType,
    GpuType,
    NetworkVolume,
    Pod,
    PodTemplate,
    RegistryCredential,
    SshKey,
)
from pods.services import PodError
from teams.models import Membership

query = QueryType()
mutation = MutationType()
user_type = ObjectType("User")
gpu_type = ObjectType("GpuType")

# Root field -> the capability (teams.access.CAPABILITIES) it needs; the role matrix test
# reads this to check that every operation of the schema is counted.
CAPABILITY = {
    "myself": "member",
    "gpuTypes": "member",
    "pod": "use",
    "podTemplates": "use",
    "podTemplate": "use",
    "dataCenters": "member",
    "serverlessGpuPools": "member",
    "podFindAndDeployOnDemand": "deploy",
    "deployCpuPod": "deploy",
    "podStop": "deploy",
    "podResume": "deploy",
    "podBidResume": "deploy",
    "podTerminate": "deploy",
    "saveTemplate": "deploy",
    # Serverless endpoints (api/graphql/endpoints.py): as the console's endpoint pages.
    "saveEndpoint": "deploy",
    "updateEndpointTemplate": "deploy",
    "saveRegistryAuth": "deploy",
    "updateRegistryAuth": "deploy",
    "deleteRegistryAuth": "deploy",
    # SSH keys are the person's; the console's SSH keys page needs "use" in the team.
    "updateUserSettings": "use",
}


def _access(info, capability: str, *, write: bool = False) -> Membership:
    request = info.context["request"]
    key = request_api_key(request)
    if write and key is not None and key.is_read_only:
        raise PermissionDenied("This API key is read-only.")
    return api_membership(request, capability)


def _actor(info):
    return info.context["request"].user


def _person(info):
    """The person acting, for rows that record their creator: a pod's own key (a hostile
    pod holds it) manages no templates or registry logins."""
    actor = _actor(info)
    if isinstance(actor, PodPrincipal):
        raise PermissionDenied("A pod's own API key cannot do this.")
    return actor


def _id(value) -> str:
    """An id to look up; a NUL byte (which PostgreSQL refuses in text) matches nothing."""
    return "" if not value or "\x00" in value else value


def _pod(team, pod_id) -> Pod:
    """The team's pod, or the same 'not found' whether it is another team's or none at all."""
    pods = Pod.objects.for_team(team).user_pods().select_related("machine", "gpu_type", "team")
    found = pods.filter(public_id=_id(pod_id)).first()
    if found is None:
        raise NotFound(f"Pod {str(pod_id)[:40]!r} not found.")
    return found


# Queries -------------------------------------------------------------------------------------


@query.field("myself")
def resolve_myself(_, info) -> dict:
    membership = _access(info, CAPABILITY["myself"])
    return {"membership": membership}


@user_type.field("id")
def resolve_user_id(obj, _info) -> str:
    membership = obj["membership"]
    return str(membership.user_id) if membership.user_id else f"team_{membership.team.slug}"


@user_type.field("email")
def resolve_user_email(obj, _info) -> str | None:
    user = obj["membership"].user if obj["membership"].user_id else None
    return user.email if user else None


@user_type.field("pubKey")
def resolve_pub_key(obj, _info) -> str:
    """RunPod keeps all of a user's SSH public keys in one newline-separated string."""
    user_id = obj["membership"].user_id
    keys = SshKey.objects.filter(user_id=user_id).order_by("created_at", "pk")
    return "\n".join(keys.values_list("public_key", flat=True))


@user_type.field("clientBalance")
def resolve_balance(obj, info) -> float:
    team = _access(info, "billing").team
    balance = BillingAccount.objects.filter(team=team).values_list("balance", flat=True).first()
    return wire.money(balance if balance is not None else ZERO)


@user_type.field("currentSpendPerHr")
def resolve_spend(obj, info) -> float:
    team = _access(info, "billing").team
    return wire.money(services.team_burn_rate(team))


@user_type.field("spendLimit")
def resolve_spend_limit(obj, info) -> float:
    """The team's hourly spend limit (billing.models.BillingAccount.spend_limit_per_hour)."""
    return wire.money(get_account(_access(info, "billing").team).spend_limit_per_hour)


@user_type.field("notifyLowBalance")
def resolve_notify_low_balance(obj, info) -> bool:
    account = get_account(_access(info, "billing").team)
    return account.low_balance_alert_threshold is not None


@user_type.field("podTemplates")
def resolve_own_templates(obj, info) -> list[dict]:
    """The team's own templates (runpodctl reads them to relabel ports)."""
    team = _access(info, "use").team
    templates = PodTemplate.objects.filter(team=team).order_by("name", "pk")
    return [wire.template(template) for template in templates]


@user_type.field("networkVolumes")
def resolve_network_volumes(obj, info) -> list[dict]:
    team = _access(info, "use").team
    volumes = NetworkVolume.objects.for_team(team).order_by("created_at", "pk")
    return [wire.network_volume(volume) for volume in volumes]


@user_type.field("pods")
def resolve_pods(obj, info) -> list[dict]:
    team = _access(info, "use").team
    pods = (
        Pod.objects.for_team(team)
        .user_pods()
        .live()
        .select_related("machine", "gpu_type", "cpu_instance", "network_volume")
        .order_by("created_at", "pk")
    )
    return [wire.pod(pod) for pod in pods]


@query.field("gpuTypes")
def resolve_gpu_types(_, info, input: dict | None = None) -> list[dict]:
    _access(info, CAPABILITY["gpuTypes"])
    gpus = GpuType.objects.filter(is_active=True).order_by("id")
    wanted = (input or {}).get("id")
    if wanted is not None:
        gpus = gpus.filter(id=wanted.replace("\x00", ""))
    return [wire.gpu_type(gpu) for gpu in gpus]


@gpu_type.field("lowestPrice")
def resolve_lowest_price(obj, _info, input: dict | None = None) -> dict:
    data = input or {}
    count = data.get("gpuCount") or 1
    if not 1 <= count <= 64:
        raise InputError("gpuCount: from 1 to 64.")
    return wire.lowest_price(
        obj["_gpu"], gpu_count=count, secure_only=bool(data.get("secureCloud"))
    )


@query.field("pod")
def resolve_pod(_, info, input: dict | None = None) -> dict:
    team = _access(info, CAPABILITY["pod"]).team
    return wire.pod(_pod(team, (input or {}).get("podId")))


@query.field("podTemplates")
def resolve_pod_templates(_, info, input: dict | None = None) -> list[dict]:
    """Templates the team may use: `isRunpod: true` the official ones, `false` the others
    (the team's own and public ones), absent all of them."""
    team = _access(info, CAPABILITY["podTemplates"]).team
    templates = PodTemplate.objects.visible_to(team).order_by("name", "pk")
    official = (input or {}).get("isRunpod")
    if official is not None:
        templates = templates.filter(team=None) if official else templates.exclude(team=None)
    return [wire.template(template) for template in templates]


@query.field("podTemplate")
def resolve_pod_template(_, info, id: str) -> dict:
    team = _access(info, CAPABILITY["podTemplate"]).team
    found = PodTemplate.objects.visible_to(team).filter(public_id=_id(id)).first()
    if found is None:
        raise NotFound(f"Template {str(id)[:40]!r} not found.")
    return wire.template(found)


@query.field("dataCenters")
def resolve_data_centers(_, info) -> list[dict]:
    _access(info, CAPABILITY["dataCenters"])
    return wire.data_centers()


# Pod mutations -------------------------------------------------------------------------------


def _deploy(info, data: dict, *, cpu: bool, field: str) -> dict:
    membership = _access(info, CAPABILITY[field], write=True)
    team = membership.team
    clouds = [data.get("cloudType")]
    if data.get("cloudType") in (None, "ALL"):
        # RunPod's ALL: any cloud; Secure first, Community when Secure has no room.
        clouds = [CloudType.SECURE, CloudType.COMMUNITY]
    for attempt, cloud in enumerate(clouds):
        form = inputs.deploy_form(team, {**data, "cloudType": cloud}, cpu=cpu)
        try:
            pod = services.deploy_pod(actor=_actor(info), team=team, request=form.to_request())
        except PodError as error:
            if error.code == "placement" and attempt + 1 < len(clouds):
                continue
            raise InputError(str(error)) from error
        return wire.pod(Pod.objects.select_related("machine", "gpu_type").get(pk=pod.pk))
    raise InputError("No machine fits this pod.")


@mutation.field("podFindAndDeployOnDemand")
def resolve_deploy_gpu(_, info, input: dict | None = None) -> dict:
    return _deploy(info, input or {}, cpu=False, field="podFindAndDeployOnDemand")


@mutation.field("deployCpuPod")
def resolve_deploy_cpu(_, info, input: dict | None = None) -> dict:
    return _deploy(info, input or {}, cpu=True, field="deployCpuPod")


def _pod_action(info, field: str, data: dict | None, action) -> Pod:
    team = _access(info, CAPABILITY[field], write=True).team
    pod = _pod(team, (data or {}).get("podId"))
    try:
        return action(pod)
    except PodError as error:
        raise InputError(str(error)) from error


def _fresh(pod: Pod) -> dict:
    return wire.pod(Pod.objects.select_related("machine", "gpu_type").get(pk=pod.pk))


@mutation.field("podStop")
def resolve_stop(_, info, input: dict | None = None) -> dict:
    actor = _actor(info)
    pod = _pod_action(info, "podStop", input, lambda p: services.stop_pod(actor=actor, pod=p))
    return _fresh(pod)


@mutation.field("podResume")
def resolve_resume(_, info, input: dict | None = None) -> dict:
    """RunPod's gpuCount: 0 starts the pod without GPUs (to reach its data); any other count
    resumes it with the GPUs it was deployed with (a pod cannot change size here)."""
    actor = _actor(info)
    zero = (input or {}).get("gpuCount") == 0

    def start(pod: Pod) -> Pod:
        return services.start_pod(actor=actor, pod=pod, zero_gpus=zero)

    return _fresh(_pod_action(info, "podResume", input, start))


@mutation.field("podBidResume")
def resolve_bid_resume(_, info, input: dict | None = None) -> dict:
    """runpodctl's `start pod --bid`: resume as a spot pod at bidPerGpu (at least the GPU
    type's minimum bid); gpuCount 0 starts it without GPUs, as podResume does."""
    actor, data = _actor(info), input or {}

    def start(pod: Pod) -> Pod:
        bid = inputs.bid_per_gpu(data.get("bidPerGpu"))
        zero = data.get("gpuCount") == 0
        return services.resume_spot_pod(actor=actor, pod=pod, bid_per_gpu=bid, zero_gpus=zero)

    return _fresh(_pod_action(info, "podBidResume", input, start))


@mutation.field("podTerminate")
def resolve_terminate(_, info, input: dict | None = None) -> None:
    actor = _actor(info)
    _pod_action(info, "podTerminate", input, lambda p: services.terminate_pod(actor=actor, pod=p))
    return None


# Templates and registry auth -----------------------------------------------------------------


@mutation.field("saveTemplate")
def resolve_save_template(_, info, input: dict | None = None) -> dict:
    team = _access(info, CAPABILITY["saveTemplate"], write=True).team
    data = input or {}
    actor = _person(info)
    if data.get("id"):
        template = PodTemplate.objects.filter(team=team, public_id=_id(data["id"])).first()
        if template is None:
            raise NotFound(f"Template {str(data['id'])[:40]!r} not found.")
        values = _template_values(data, template)
        try:
            saved = services.update_template(actor=actor, template=template, **values)
        except PodError as error:
            raise InputError(str(error)) from error
    else:
        saved = services.create_template(actor=actor, team=team, **_template_values(data, None))
    return wire.template(saved)


def _template_values(data: dict, template: PodTemplate | None) -> dict:
    values = inputs.template_form(data, instance=template).values()
    old = template.ports if template else []
    values["ports"] = inputs.label_ports(values["ports"], data.get("portsConfig"), old=old)
    return values


def _credential(team, credential_id) -> RegistryCredential:
    found = RegistryCredential.objects.filter(team=team, public_id=_id(credential_id)).first()
    if found is None:
        raise NotFound(f"Registry auth {str(credential_id)[:40]!r} not found.")
    return found


@mutation.field("saveRegistryAuth")
def resolve_save_registry_auth(_, info, input: dict | None = None) -> dict:
    team = _access(info, CAPABILITY["saveRegistryAuth"], write=True).team
    form = inputs.registry_form(input or {})
    try:
        credential = connect.save_registry_credential(
            actor=_person(info), team=team, **form.cleaned_data
        )
    except ConnectError as error:
        raise InputError(str(error)) from error
    return {"id": credential.public_id, "name": credential.name}


@mutation.field("updateRegistryAuth")
def resolve_update_registry_auth(_, info, input: dict | None = None) -> dict:
    team = _access(info, CAPABILITY["updateRegistryAuth"], write=True).team
    data = input or {}
    with transaction.atomic():
        credential = _credential(team, data.get("id"))
        form = inputs.registry_form({**data, "name": credential.name})
        credential = connect.update_registry_credential(
            actor=_person(info),
            credential=credential,
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
        )
    return {"id": credential.public_id, "name": credential.name}


@mutation.field("deleteRegistryAuth")
def resolve_delete_registry_auth(_, info, registryAuthId: str | None = None) -> None:
    team = _access(info, CAPABILITY["deleteRegistryAuth"], write=True).team
    connect.delete_registry_credential(
        actor=_person(info), credential=_credential(team, registryAuthId)
    )
    return None


# The user's settings -------------------------------------------------------------------------

MAX_PUBLIC_KEYS = 50


def _parsed_keys(lines: list[str]) -> dict[str, str]:
    """fingerprint -> key line, refusing the whole list for one bad line."""
    if len(lines) > MAX_PUBLIC_KEYS:
        raise InputError(f"pubKey: at most {MAX_PUBLIC_KEYS} keys.")
    keys = {}
    for number, line in enumerate(lines, start=1):
        try:
            keys.setdefault(parse_public_key(line).fingerprint, line)
        except InvalidKey as error:
            raise InputError(f"pubKey: line {number}: {error}") from error
    return keys


def _replace_ssh_keys(person, team, lines: list[str]) -> None:
    """RunPod's pubKey is the whole set: keys not in it are deleted, new ones added, each
    through the SSH key service (one audit event per key)."""
    wanted = _parsed_keys(lines)
    with transaction.atomic():
        for key in SshKey.objects.filter(user=person).exclude(fingerprint__in=wanted):
            connect.delete_ssh_key(actor=person, team=team, key=key)
        have = set(SshKey.objects.filter(user=person).values_list("fingerprint", flat=True))
        for fingerprint, line in wanted.items():
            if fingerprint in have:
                continue
            try:
                connect.add_ssh_key(actor=person, team=team, name="", public_key=line)
            except ConnectError as error:  # added by a concurrent request meanwhile
                raise InputError(f"pubKey: {error}") from error


@mutation.field("updateUserSettings")
def resolve_update_user_settings(_, info, input: dict | None = None) -> dict:
    """What the console can honour of RunPod's user settings: pubKey, the person's SSH public
    keys (newline-separated), which every pod they may connect to then gets."""
    membership = _access(info, CAPABILITY["updateUserSettings"], write=True)
    person = _person(info)
    data = input or {}
    if data.get("pubKey") is not None:
        _replace_ssh_keys(person, membership.team, inputs.public_keys(data["pubKey"]))
    return {"membership": membership}


OBJECTS = [query, mutation, user_type, gpu_type]

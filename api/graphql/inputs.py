"""RunPod's GraphQL inputs as the console's own forms' data, so a deploy or a template from the
SDK is validated by exactly the code that validates the wizard and the template page."""

import re
from decimal import Decimal

from django import forms

from pods.connect.forms import RegistryCredentialForm
from pods.forms import MAX_ENV_ROWS, DeployForm, TemplateForm, apply_template, lookup_text
from pods.models import CloudType, CpuInstanceType, PodTemplate
from teams.models import Team

PORT_ITEM = re.compile(r"^(\d{1,5})/(http|tcp)$")
# The SDK sends templateId "runpod-ubuntu" on every CPU deploy that names no template: RunPod's
# stock Ubuntu image. Unless a template of that id exists here, the named image is used alone.
SDK_DEFAULT_CPU_TEMPLATE = "runpod-ubuntu"


class InputError(Exception):
    """A refused input: the message lands in the GraphQL `errors` array."""


def form_errors(form) -> str:
    parts = []
    for field, errors in form.errors.items():
        label = "" if field == "__all__" else f"{field}: "
        parts.extend(f"{label}{error}" for error in errors)
    return " ".join(parts)


def split_ports(text: str | None) -> dict:
    """ "8888/http,22/tcp" -> the wizard's http_ports "8888" and tcp_ports "22"."""
    http, tcp = [], []
    for item in (text or "").replace(" ", "").split(","):
        if not item:
            continue
        match = PORT_ITEM.match(item)
        if match is None:
            raise InputError(f"ports: “{item[:40]}” is not like 8888/http or 22/tcp.")
        (http if match[2] == "http" else tcp).append(match[1])
    return {"http_ports": ",".join(http), "tcp_ports": ",".join(tcp)}


def env_rows(env: list | None) -> dict:
    rows = [row or {} for row in (env or [])]
    if len(rows) > MAX_ENV_ROWS:
        raise InputError(f"env: at most {MAX_ENV_ROWS} variables.")
    data = {"env_rows": str(max(len(rows), 1))}
    for i, row in enumerate(rows):
        data[f"env_key_{i}"] = row.get("key") or ""
        data[f"env_value_{i}"] = row.get("value") or ""
    return data


def _template(team: Team, template_id: str | None, *, cpu: bool) -> PodTemplate | None:
    if not template_id:
        return None
    found = None
    if lookup_text(template_id):  # a NUL byte matches no row (and PostgreSQL refuses it)
        templates = PodTemplate.objects.visible_to(team).for_pods()
        found = templates.filter(public_id=template_id).first()
    if found is None and not (cpu and template_id == SDK_DEFAULT_CPU_TEMPLATE):
        raise InputError(f"templateId: no template {template_id[:40]!r}.")
    return found


def _cloud(value: str | None) -> str:
    return value if value in (CloudType.SECURE, CloudType.COMMUNITY) else CloudType.SECURE


def _present(values: dict) -> dict:
    """Only what the caller sent: absent fields keep the template's or the wizard's value."""
    return {key: value for key, value in values.items() if value is not None}


def deploy_data(team: Team, data: dict, *, cpu: bool) -> dict:
    """The wizard's form data for a podFindAndDeployOnDemand / deployCpuPod input."""
    template = _template(team, data.get("templateId"), cpu=cpu)
    form_data = {
        "compute": "cpu" if cpu else "gpu",
        "cloud_type": _cloud(data.get("cloudType")),
        "pricing": "on_demand",
        "container_disk_gb": "10",
        "volume_gb": "0",
        "volume_mount_path": "/workspace",
        "env_rows": "1",
    }
    if template is not None:
        apply_template(form_data, template)
        form_data["template"] = template.public_id
    form_data.update(
        _present(
            {
                "name": data.get("name"),
                "image": data.get("imageName") or None,
                "data_center": data.get("dataCenterId"),
                "network_volume": data.get("networkVolumeId"),
                "container_disk_gb": data.get("containerDiskInGb"),
                "volume_gb": None if cpu else data.get("volumeInGb"),
                "volume_mount_path": data.get("volumeMountPath"),
                "start_command": data.get("dockerArgs"),
            }
        )
    )
    if data.get("ports") is not None:
        form_data.update(split_ports(data["ports"]))
    if data.get("env") is not None:
        form_data = {k: v for k, v in form_data.items() if not k.startswith("env_")}
        form_data.update(env_rows(data["env"]))
    if cpu:
        form_data["cpu_instance"] = data.get("instanceId") or _cheapest_cpu()
    else:
        form_data["gpu_type"] = data.get("gpuTypeId") or ""
        form_data["gpu_count"] = data.get("gpuCount") or 1
    return form_data


def _cheapest_cpu() -> str:
    """The SDK's create_pod sends no instanceId unless asked: the smallest offer then."""
    cheapest = CpuInstanceType.objects.order_by("price", "vcpu", "id").first()
    return cheapest.id if cheapest else ""


def deploy_form(team: Team, data: dict, *, cpu: bool) -> DeployForm:
    form = DeployForm(deploy_data(team, data, cpu=cpu), team=team)
    if not form.is_valid():
        raise InputError(form_errors(form))
    return form


def template_form(data: dict, instance: PodTemplate | None = None) -> TemplateForm:
    values = {
        "name": data.get("name") or "",
        "image": data.get("imageName") or "",
        "container_disk_gb": data.get("containerDiskInGb") or 10,
        "volume_gb": data.get("volumeInGb") or 0,
        "volume_mount_path": data.get("volumeMountPath") or "/workspace",
        "start_command": data.get("dockerArgs") or "",
        "readme": data.get("readme") or "",
        **split_ports(data.get("ports")),
        **env_rows(data.get("env")),
    }
    for flag, name in (("isServerless", "is_serverless"), ("isPublic", "is_public")):
        if data.get(flag):
            values[name] = "on"
    form = TemplateForm(values, instance=instance)
    if not form.is_valid():
        raise InputError(form_errors(form))
    return form


def registry_form(data: dict) -> RegistryCredentialForm:
    """RunPod's registry auth names no registry: Docker Hub, as RunPod assumes."""
    values = {
        "name": data.get("name") or "",
        "registry": "docker.io",
        "username": data.get("username") or "",
        "password": data.get("password") or "",
    }
    form = RegistryCredentialForm(values)
    if not form.is_valid():
        raise InputError(form_errors(form))
    return form


def bid_per_gpu(value: float | None) -> Decimal:
    """podBidResume's bidPerGpu (a JSON float) as the wizard's bid field takes it: a Decimal
    of at most 4 places, from 0.0001. The float's shortest text is the number the client sent."""
    field = DeployForm.base_fields["bid_per_gpu"]
    try:
        bid = field.clean(None if value is None else repr(value))
    except forms.ValidationError as error:
        raise InputError(f"bidPerGpu: {' '.join(error.messages)}") from error
    if bid is None:
        raise InputError("bidPerGpu: enter your bid per GPU per hour.")
    return bid


def public_keys(text: str | None) -> list[str]:
    """updateUserSettings' pubKey: all of a person's SSH public keys in one string, one per
    line (runpodctl separates them with blank lines)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


MAX_PORT_LABEL = 40


def _label(row: dict | None) -> tuple[int, str]:
    row = row or {}
    number = str(row.get("port") or "").split("/")[0]
    name = " ".join(str(row.get("name") or "").split())
    if not number.isdigit() or not name or len(name) > MAX_PORT_LABEL or not name.isprintable():
        raise InputError(
            f"portsConfig: each entry is a template port and a name of 1 to {MAX_PORT_LABEL} "
            "characters."
        )
    return int(number), name


def label_ports(ports: list[dict], config: list | None, *, old: list[dict]) -> list[dict]:
    """saveTemplate's portsConfig as labels on the template's ports, matched by number (as
    runpodctl and RunPod's dashboard do). Without portsConfig a port keeps its old label."""
    if config is None:
        labels = {row["port"]: row["label"] for row in old if row.get("label")}
    else:
        labels = dict(_label(row) for row in config)
        unknown = sorted(set(labels) - {row["port"] for row in ports})
        if unknown:
            raise InputError(f"portsConfig: {unknown[0]} is not one of the template's ports.")
    return [
        {**row, "label": labels[row["port"]]} if row["port"] in labels else row for row in ports
    ]

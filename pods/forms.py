"""The deploy wizard's form and the small forms of templates, volumes and pod actions.

Validation lives here (what a field may contain); decisions that need the database state at
deploy time (placement, credit) live in pods.services and come back as PodError."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from pods.models import (
    CloudType,
    CpuInstanceType,
    DataCenter,
    GpuType,
    NetworkVolume,
    Pod,
    PodTemplate,
)
from pods.runtime import runtime_choices
from pods.services import DeployRequest
from pods.validators import validate_env_name

IMAGE_REF = re.compile(r"^[a-z0-9]([a-z0-9._/:@-]*[a-zA-Z0-9_.-])?$")
MAX_PORTS = 10
MAX_ENV_ROWS = 50
MAX_GPUS = 8
# Paths the pod's system lives in: a volume mounted over them would break the pod.
RESERVED_PATHS = ("/bin", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr")
RESERVED_PATHS += ("/tmp", "/run", "/root")


def bounded_int(value, *, low: int, high: int) -> int | None:
    """`value` from a query string or form as an int from `low` to `high`, or None. A bounded
    IntegerField decides, so `²`, `1e9`, 5,000 digits or an empty value are simply not one
    (str.isdigit() accepts `²`, which int() then refuses)."""
    try:
        return forms.IntegerField(min_value=low, max_value=high).clean(value)
    except ValidationError:
        return None


def lookup_text(value) -> str | None:
    """A query value used to look rows up, or None when empty or holding a NUL byte, which
    PostgreSQL refuses in any text comparison (the lookup would fail with a 500; Django's
    ModelChoiceField checks for it, the wizard's own lookups must too)."""
    return value if isinstance(value, str) and value and "\x00" not in value else None


def validate_mount_path(value: str) -> str:
    value = value.strip()
    if not value.startswith("/") or value == "/":
        raise ValidationError("Use an absolute path below /, like /workspace.")
    if len(value) > 200 or not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        raise ValidationError("Use letters, digits, '.', '_', '-' and '/' only.")
    parts = value.strip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValidationError("No empty, '.' or '..' parts in the path.")
    clean = "/" + "/".join(parts)
    if any(clean == p or clean.startswith(p + "/") for p in RESERVED_PATHS):
        raise ValidationError(f"{clean} is part of the pod's system; choose another path.")
    return clean


def validate_image(value: str) -> str:
    value = value.strip()
    if not IMAGE_REF.match(value) or len(value) > 255:
        raise ValidationError("Enter an image like runpod/pytorch:2.1 (lowercase, no spaces).")
    return value


def parse_ports(text: str, protocol: str) -> list[dict]:
    """ "8888, 8080" -> [{"port": 8888, "protocol": "http"}, ...]; errors name the bad item."""
    ports = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        port = bounded_int(item, low=1, high=65535)
        if port is None:
            raise ValidationError(f"“{item}” is not a port: use numbers from 1 to 65535.")
        ports.append({"port": port, "protocol": protocol})
    return ports


def _required(message: str) -> ValidationError:
    return ValidationError(message, code="required")


def check_ports(http: list[dict], tcp: list[dict]) -> list[str]:
    """Errors for the combined list: unique and at most MAX_PORTS."""
    seen: set[int] = set()
    errors = []
    for entry in http + tcp:
        if entry["port"] in seen:
            errors.append(f"Port {entry['port']} is listed twice.")
        seen.add(entry["port"])
    if len(http) + len(tcp) > MAX_PORTS:
        errors.append(f"At most {MAX_PORTS} ports in total.")
    return errors


class EnvRowsMixin:
    """Environment variables as numbered rows env_key_<i>/env_value_<i> (add/remove rows
    without JavaScript by re-posting the form with one more or one less)."""

    max_env_rows = MAX_ENV_ROWS

    def add_env_fields(self, rows: int) -> None:
        self.env_row_count = rows
        for i in range(rows):
            self.fields[f"env_key_{i}"] = forms.CharField(required=False, max_length=100)
            self.fields[f"env_value_{i}"] = forms.CharField(
                required=False, max_length=4096, strip=False
            )

    def env_rows(self) -> list[tuple]:
        return [(self[f"env_key_{i}"], self[f"env_value_{i}"]) for i in range(self.env_row_count)]

    def clean_env(self) -> list[dict]:
        env, seen = [], set()
        for i in range(self.env_row_count):
            key = (self.cleaned_data.get(f"env_key_{i}") or "").strip()
            value = self.cleaned_data.get(f"env_value_{i}") or ""
            if f"env_key_{i}" in self.errors or (not key and not value):
                continue  # a name too long already has its message
            try:
                if not key:
                    raise ValidationError("A variable needs a name.")
                validate_env_name(key)
                if key in seen:
                    raise ValidationError(f"{key} is set twice.")
            except ValidationError as error:
                self.add_error(f"env_key_{i}", error)
                continue
            seen.add(key)
            env.append({"key": key, "value": value})
        return env


def env_row_count(data, default: int = 1) -> int:
    """The posted number of env rows, at most MAX_ENV_ROWS (a larger count is cut, so no
    client-chosen number sizes a loop); `default` when it is not a number of rows at all."""
    rows = bounded_int(data.get("env_rows"), low=0, high=2**31)
    return default if rows is None else min(rows, MAX_ENV_ROWS)


def with_env_row_added(data) -> None:
    """The "Add variable" button: one more row, up to MAX_ENV_ROWS (`data` is mutable)."""
    data["env_rows"] = str(min(env_row_count(data) + 1, MAX_ENV_ROWS))


def with_env_row_removed(data, action: str) -> None:
    """A "remove_env_<i>" button: later rows move up one; an index outside the rows is ignored."""
    rows = env_row_count(data)
    index = bounded_int(action.removeprefix("remove_env_"), low=0, high=rows - 1)
    if index is None:
        return
    for i in range(index, rows - 1):
        data[f"env_key_{i}"] = data.get(f"env_key_{i + 1}", "")
        data[f"env_value_{i}"] = data.get(f"env_value_{i + 1}", "")
    data.pop(f"env_key_{rows - 1}", None)
    data.pop(f"env_value_{rows - 1}", None)
    data["env_rows"] = str(rows - 1)


class ContainerFieldsMixin(EnvRowsMixin):
    """What the deploy wizard and templates both configure: image, mount path, ports, env."""

    def clean_image(self) -> str:
        return validate_image(self.cleaned_data["image"])

    def clean_volume_mount_path(self) -> str:
        return validate_mount_path(self.cleaned_data["volume_mount_path"])

    def clean_http_ports(self) -> list[dict]:
        return parse_ports(self.cleaned_data["http_ports"], "http")

    def clean_tcp_ports(self) -> list[dict]:
        return parse_ports(self.cleaned_data["tcp_ports"], "tcp")

    def _clean_ports(self, data: dict) -> None:
        """Across both lists: unique, at most 10; sets data["ports"] when both are valid."""
        if "http_ports" not in data or "tcp_ports" not in data:
            return
        ports = data["http_ports"] + data["tcp_ports"]
        messages = check_ports(data["http_ports"], data["tcp_ports"])
        for message in messages:
            self.add_error("tcp_ports" if data["tcp_ports"] else "http_ports", message)
        if not messages:
            data["ports"] = ports


class DeployForm(ContainerFieldsMixin, forms.Form):
    compute = forms.ChoiceField(choices=[("gpu", "GPU"), ("cpu", "CPU")], initial="gpu")
    min_vram = forms.IntegerField(required=False, min_value=0, max_value=1024)
    cloud_type = forms.ChoiceField(choices=CloudType.choices, initial=CloudType.SECURE)
    data_center = forms.ModelChoiceField(
        DataCenter.objects.all(), required=False, empty_label="Any data centre"
    )
    gpu_type = forms.ModelChoiceField(GpuType.objects.filter(is_active=True), required=False)
    gpu_count = forms.TypedChoiceField(
        coerce=int, choices=[(n, n) for n in range(1, MAX_GPUS + 1)], initial=1, required=False
    )
    cpu_instance = forms.ModelChoiceField(CpuInstanceType.objects.all(), required=False)
    template = forms.ModelChoiceField(
        PodTemplate.objects.none(), required=False, to_field_name="public_id"
    )
    applied_template = forms.CharField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(max_length=100, required=False)
    image = forms.CharField(max_length=255)
    container_disk_gb = forms.IntegerField(min_value=1, max_value=1000, initial=10)
    volume_gb = forms.IntegerField(min_value=0, max_value=4000, initial=20)
    volume_mount_path = forms.CharField(max_length=255, initial="/workspace")
    network_volume = forms.ModelChoiceField(
        NetworkVolume.objects.none(),
        required=False,
        to_field_name="public_id",
        empty_label="No network volume",
    )
    start_command = forms.CharField(
        required=False, max_length=10000, strip=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    http_ports = forms.CharField(required=False, max_length=200)
    tcp_ports = forms.CharField(required=False, max_length=200)
    pricing = forms.ChoiceField(choices=Pod.Pricing.choices, initial=Pod.Pricing.ON_DEMAND)
    bid_per_gpu = forms.DecimalField(
        required=False, min_value=Decimal("0.0001"), max_digits=10, decimal_places=4
    )

    def __init__(self, *args, team, gpu_counts: list[int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.team = team
        templates = PodTemplate.objects.visible_to(team).for_pods()
        self.fields["template"].queryset = templates.offered()  # only what a machine can run
        self.fields["network_volume"].queryset = NetworkVolume.objects.for_team(team)
        if gpu_counts:
            self.fields["gpu_count"].choices = [(n, n) for n in gpu_counts]
        self.add_env_fields(env_row_count(self.data if self.is_bound else {}, 1))

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if any(ord(ch) < 32 for ch in name):
            raise ValidationError("No control characters in a name.")
        return name

    def clean(self) -> dict:
        data = super().clean()
        data["env"] = self.clean_env()
        self._clean_compute(data)
        self._clean_ports(data)
        self._clean_network_volume(data)
        self._clean_pricing(data)
        return data

    def _clean_compute(self, data: dict) -> None:
        if data.get("compute") == "cpu":
            if not data.get("cpu_instance"):
                self.add_error("cpu_instance", _required("Choose a CPU instance type."))
            return
        if not data.get("gpu_type"):
            self.add_error("gpu_type", _required("Choose a GPU type."))
        if not data.get("gpu_count"):
            self.add_error("gpu_count", _required("Choose how many GPUs."))

    def _clean_network_volume(self, data: dict) -> None:
        volume, center = data.get("network_volume"), data.get("data_center")
        if volume and center and volume.data_center_id != center.id:
            self.add_error(
                "network_volume",
                f"{volume.name} is in {volume.data_center_id}; the pod must be in the same data "
                f"centre (you chose {center.id}).",
            )

    def _clean_pricing(self, data: dict) -> None:
        if data.get("pricing") != Pod.Pricing.SPOT:
            return
        if data.get("compute") == "cpu":
            self.add_error("pricing", "Spot pricing is for GPU pods only.")
            return
        bid, gpu = data.get("bid_per_gpu"), data.get("gpu_type")
        if bid is None:
            if "bid_per_gpu" not in self.errors:
                self.add_error("bid_per_gpu", _required("Enter your bid per GPU per hour."))
        elif gpu and bid < gpu.min_bid:
            self.add_error("bid_per_gpu", f"The minimum bid for {gpu} is ${gpu.min_bid}/h.")

    def hide_required_errors(self) -> None:
        """While the wizard is being filled in, only show mistakes, not missing answers."""
        for name in list(self._errors):
            kept = [e for e in self._errors[name].as_data() if e.code != "required"]
            if kept:
                self._errors[name] = self.error_class(kept)
            else:
                del self._errors[name]

    def to_request(self) -> DeployRequest:
        data = self.cleaned_data
        gpu = data["compute"] == "gpu"
        template = data.get("template")
        name = data["name"] or (
            f"{template.name if template else data['gpu_type'] if gpu else 'CPU'} pod"
        )
        return DeployRequest(
            name=name[:100],
            cloud_type=data["cloud_type"],
            image=data["image"],
            container_disk_gb=data["container_disk_gb"],
            volume_gb=data["volume_gb"],
            volume_mount_path=data["volume_mount_path"],
            gpu_type=data["gpu_type"] if gpu else None,
            gpu_count=data["gpu_count"] if gpu else 0,
            cpu_instance=None if gpu else data["cpu_instance"],
            data_center=data.get("data_center"),
            template=template,
            network_volume=data.get("network_volume"),
            start_command=data["start_command"],
            env=data["env"],
            ports=data["http_ports"] + data["tcp_ports"],
            pricing=data["pricing"],
            bid_per_gpu=data.get("bid_per_gpu") if data["pricing"] == Pod.Pricing.SPOT else None,
        )


def template_preset(template: PodTemplate) -> dict:
    """The wizard's fields a template fills in (the browser applies them as they are, the
    server through apply_template)."""
    return {
        "image": template.image,
        "container_disk_gb": str(template.container_disk_gb),
        "volume_gb": str(template.volume_gb),
        "volume_mount_path": template.volume_mount_path,
        "start_command": template.start_command,
        "http_ports": template.ports_text("http"),
        "tcp_ports": template.ports_text("tcp"),
        "env": template.env,
    }


def apply_template(data, template: PodTemplate) -> None:
    """Prefill the wizard's fields (a mutable QueryDict or dict) from a template."""
    preset = template_preset(template)
    env = preset.pop("env")
    for name, value in preset.items():
        data[name] = value
    for key in [k for k in data if k.startswith("env_")]:
        del data[key]
    for i, row in enumerate(env):
        data[f"env_key_{i}"] = row["key"]
        data[f"env_value_{i}"] = row["value"]
    data["env_rows"] = str(max(len(env), 1))
    data["applied_template"] = template.public_id


class TemplateForm(ContainerFieldsMixin, forms.ModelForm):
    http_ports = forms.CharField(required=False, max_length=200, help_text="e.g. 8888, 8080")
    tcp_ports = forms.CharField(required=False, max_length=200, help_text="e.g. 22")
    runtimes = forms.MultipleChoiceField(
        choices=runtime_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: any. The process runtime ignores the image: the start command "
        "must serve the template's ports with what the host has.",
    )

    class Meta:
        model = PodTemplate
        fields = [
            "name",
            "image",
            "container_disk_gb",
            "volume_gb",
            "volume_mount_path",
            "start_command",
            "runtimes",
            "is_serverless",
            "is_public",
            "readme",
        ]
        widgets = {
            "start_command": forms.Textarea(attrs={"rows": 4}),
            "readme": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and not self.is_bound:
            self.initial["http_ports"] = instance.ports_text("http")
            self.initial["tcp_ports"] = instance.ports_text("tcp")
            for i, row in enumerate(instance.env):
                self.initial[f"env_key_{i}"] = row["key"]
                self.initial[f"env_value_{i}"] = row["value"]
        rows = len(instance.env) + 1 if not self.is_bound else env_row_count(self.data, 1)
        self.add_env_fields(rows)
        self.fields["container_disk_gb"].validators.append(_range(1, 1000))
        self.fields["volume_gb"].validators.append(_range(0, 4000))

    def clean(self) -> dict:
        data = super().clean()
        data["env"] = self.clean_env()
        self._clean_ports(data)
        return data

    def values(self) -> dict:
        data = self.cleaned_data
        values = {name: data[name] for name in self.Meta.fields}
        return {**values, "ports": data["ports"], "env": data["env"]}


def _range(low: int, high: int):
    def check(value: int) -> None:
        if not low <= value <= high:
            raise ValidationError(f"Choose between {low} and {high} GB.")

    return check


class NetworkVolumeForm(forms.Form):
    name = forms.CharField(max_length=100)
    size_gb = forms.IntegerField(min_value=1, max_value=100_000, label="Size (GB)")
    data_center = forms.ModelChoiceField(DataCenter.objects.all(), empty_label=None)


class GrowVolumeForm(forms.Form):
    size_gb = forms.IntegerField(min_value=1, max_value=100_000, label="New size (GB)")


class RenameForm(forms.Form):
    name = forms.CharField(max_length=100)


class TimerForm(forms.Form):
    action = forms.ChoiceField(choices=[("stop", "Stop"), ("terminate", "Terminate")])
    hours = forms.DecimalField(
        required=False,
        min_value=Decimal("0.0167"),
        max_value=Decimal(720),
        max_digits=7,
        decimal_places=4,
        help_text="Empty cancels the timer.",
        # Django's own messages quote the bound ("greater than or equal to 0.0167").
        error_messages={
            "min_value": "Set the timer to at least 1 minute (0.0167 hours).",
            "max_value": "Set the timer to at most 720 hours (30 days).",
            "max_decimal_places": "Use at most 4 decimals of an hour.",
            "invalid": "Enter the hours as a number, like 1.5.",
        },
    )

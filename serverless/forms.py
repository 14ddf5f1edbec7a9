"""The endpoint form (create and edit) and the request tester's form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from billing.money import format_usd
from console import safejson
from pods.models import CpuInstanceType, GpuType, NetworkVolume, PodTemplate
from pods.validators import validate_env_name
from serverless.models import Endpoint
from teams.models import Team

GPU_CHOICES = 3  # GPU types in priority order
MAX_GPUS = 8
MAX_WORKERS = 100
MAX_ENV = 50
MAX_TEST_INPUT = 64 * 1024


def _bounded(low: int, high: int) -> list:
    return [MinValueValidator(low), MaxValueValidator(high)]


def _gpu_label(gpu: GpuType) -> str:
    return f"{gpu.display_name} · {gpu.memory_gb} GB · {format_usd(gpu.serverless_price, 2)}/h"


def _cpu_label(cpu: CpuInstanceType) -> str:
    return f"{cpu} · {format_usd(cpu.serverless_price, 2)}/h"


# What each setting means, as a new user asks it (RunPod's names, our units).
LABELS = {
    "gpu_count": "GPUs per worker",
    "cpu_instance": "CPU instance",
    "workers_min": "Active workers (min)",
    "workers_max": "Max workers",
    "idle_timeout": "Idle timeout (s)",
    "execution_timeout": "Execution timeout (s)",
    "scaler_type": "Scale by",
    "scaler_value": "Scaler threshold",
}
HELP = {
    "name": "Shown in the console only; the API uses the endpoint's id.",
    "template": "The image and start command of every worker (a serverless template).",
    "gpu_count": "Price per worker: the GPU's $/h times this count.",
    "workers_min": "Always on, billed even when idle; 0 scales to zero.",
    "workers_max": "The most workers running at once.",
    "idle_timeout": "How long a worker waits for another job before it stops.",
    "execution_timeout": "A job running longer is failed and its worker stopped.",
    "scaler_value": (
        "Queue delay: start a worker when a job waits longer than this many seconds. "
        "Request count: one worker per this many queued or running jobs."
    ),
    "network_volume": "Mounted at /runpod-volume in every worker.",
}


def _style(form: forms.BaseForm) -> None:
    """Bootstrap classes on every widget (the templates render fields with {{ field }})."""
    for field in form.fields.values():
        is_select = isinstance(field.widget, forms.Select)
        field.widget.attrs.setdefault("class", "form-select" if is_select else "form-control")


class EndpointForm(forms.ModelForm):
    compute = forms.ChoiceField(choices=[("gpu", "GPU"), ("cpu", "CPU")], initial="gpu")
    env_text = forms.CharField(
        label="Environment variables",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One KEY=value per line, given to every worker.",
    )

    class Meta:
        model = Endpoint
        fields = [
            "name",
            "template",
            "cpu_instance",
            "gpu_count",
            "workers_min",
            "workers_max",
            "idle_timeout",
            "execution_timeout",
            "scaler_type",
            "scaler_value",
            "network_volume",
        ]

    def __init__(self, *args, team: Team, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = PodTemplate.objects.visible_to(team).filter(
            is_serverless=True
        )
        self.fields["network_volume"].queryset = NetworkVolume.objects.for_team(team)
        self.fields["cpu_instance"].queryset = CpuInstanceType.objects.all()
        self.fields["cpu_instance"].required = False
        for i in range(GPU_CHOICES):
            self.fields[f"gpu_{i}"] = forms.ModelChoiceField(
                GpuType.objects.filter(is_active=True),
                required=False,
                label=f"GPU choice {i + 1}" if i else "GPU type (first choice)",
                empty_label="—" if i else "Choose a GPU type",
                help_text="" if i else "Price per GPU, billed per second while a worker runs.",
            )
            self.fields[f"gpu_{i}"].label_from_instance = _gpu_label
        self.fields["gpu_1"].help_text = "Fallbacks, used when no machine has the first free."
        self.fields["cpu_instance"].label_from_instance = _cpu_label
        self.fields["cpu_instance"].empty_label = "Choose a CPU instance"
        self.fields["template"].empty_label = "Choose a template"
        self.fields["network_volume"].empty_label = "None"
        self._describe()
        self._bound_numbers()
        _style(self)
        if self.instance.pk and not self.is_bound:
            self._initial_from_instance()

    def _describe(self) -> None:
        for name, label in LABELS.items():
            self.fields[name].label = label
        for name, text in HELP.items():
            self.fields[name].help_text = text

    def _bound_numbers(self) -> None:
        bounds = {
            "gpu_count": (1, MAX_GPUS),
            "workers_min": (0, MAX_WORKERS),
            "workers_max": (1, MAX_WORKERS),
            "idle_timeout": (1, 3600),
            "execution_timeout": (5, 7 * 24 * 3600),
            "scaler_value": (1, 10_000),
        }
        for name, (low, high) in bounds.items():
            self.fields[name].validators.extend(_bounded(low, high))
            self.fields[name].widget.attrs.update(min=low, max=high)

    def _initial_from_instance(self) -> None:
        endpoint = self.instance
        self.initial["compute"] = "gpu" if endpoint.is_gpu else "cpu"
        for i, gpu_id in enumerate(endpoint.gpu_type_ids[:GPU_CHOICES]):
            self.initial[f"gpu_{i}"] = gpu_id
        self.initial["env_text"] = "\n".join(f"{e['key']}={e['value']}" for e in endpoint.env)

    def gpu_fields(self) -> list:
        return [self[f"gpu_{i}"] for i in range(GPU_CHOICES)]

    def clean_env_text(self) -> list[dict]:
        env, seen = [], set()
        for line in self.cleaned_data["env_text"].splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep:
                raise ValidationError(f"{key[:40]!r} needs a value: KEY=value.")
            try:
                validate_env_name(key)
            except ValidationError as error:
                raise ValidationError(f"{key[:40]!r}: {' '.join(error.messages)}") from None
            if key in seen:
                raise ValidationError(f"{key} is set twice.")
            seen.add(key)
            env.append({"key": key, "value": value})
        if len(env) > MAX_ENV:
            raise ValidationError(f"At most {MAX_ENV} variables.")
        return env

    def clean(self) -> dict:
        data = super().clean()
        if data.get("compute") == "gpu":
            gpus = [data[f"gpu_{i}"].id for i in range(GPU_CHOICES) if data.get(f"gpu_{i}")]
            if not gpus:
                self.add_error("gpu_0", "Choose at least one GPU type.")
            if len(set(gpus)) != len(gpus):
                self.add_error("gpu_1", "Each GPU type once.")
            data["gpu_type_ids"], data["cpu_instance"] = gpus, None
        else:
            if not data.get("cpu_instance"):
                self.add_error("cpu_instance", "Choose a CPU instance type.")
            data["gpu_type_ids"] = []
        low, high = data.get("workers_min"), data.get("workers_max")
        if low is not None and high is not None and low > high:
            self.add_error("workers_min", "Active workers cannot exceed max workers.")
        return data

    def values(self) -> dict:
        data = self.cleaned_data
        values = {name: data[name] for name in self.Meta.fields}
        values.update(gpu_type_ids=data["gpu_type_ids"], env=data["env_text"])
        return values


class TestJobForm(forms.Form):
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "class": "form-control font-monospace"}),
        initial='{\n  "prompt": "Hello"\n}',
        max_length=MAX_TEST_INPUT,
        help_text="The job's input, as JSON.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _style(self)

    def clean_input(self):
        try:
            return safejson.loads(self.cleaned_data["input"])
        except ValueError as error:
            raise ValidationError(f"Not valid JSON: {error}") from None

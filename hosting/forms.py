"""Hosting forms: what a field may hold; SPEC.md's minimum specs checked against what the
host declares (hosting.specs), each failure on its own field."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from hosting.models import HostedMachine
from hosting.services import Registration
from hosting.specs import Declared, problems
from pods.models import CloudType, DataCenter, GpuType

MAX_GPUS = 16


class MachineForm(forms.Form):
    name = forms.SlugField(max_length=60, help_text="Letters, digits, - and _.")
    cloud_type = forms.ChoiceField(choices=CloudType.choices)
    data_center = forms.ModelChoiceField(queryset=DataCenter.objects.all())
    gpu_type = forms.ModelChoiceField(
        queryset=GpuType.objects.order_by("display_name"), label="GPU model"
    )
    gpu_count = forms.IntegerField(min_value=1, max_value=MAX_GPUS, label="GPUs")
    vram_gb_per_gpu = forms.IntegerField(min_value=1, max_value=1024, label="VRAM per GPU (GB)")
    physical_cores = forms.IntegerField(min_value=1, max_value=1024, label="Physical CPU cores")
    ram_gb = forms.IntegerField(min_value=1, max_value=65536, label="RAM (GB)")
    nvme_gb = forms.IntegerField(min_value=1, max_value=10_000_000, label="NVMe storage (GB)")
    network_mbps = forms.IntegerField(min_value=1, max_value=1_000_000, label="Network (Mbps)")
    os = forms.ChoiceField(choices=HostedMachine.Os.choices, label="Operating system")
    driver_version = forms.RegexField(
        regex=r"^\d{1,4}(\.\d{1,4}){0,2}$", max_length=20, label="NVIDIA driver version"
    )
    min_bid_per_gpu = forms.DecimalField(
        min_value=Decimal("0.01"),
        max_value=Decimal("100"),
        decimal_places=2,
        label="Minimum spot bid per GPU ($/h)",
        help_text="On-demand prices are the platform's; lower spot bids never reach your machine.",
    )

    def declared(self) -> Declared:
        data = self.cleaned_data
        return Declared(**{f: data[f] for f in Declared.__dataclass_fields__})

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        for field, message in problems(self.declared()).items():
            self.add_error(field, message)
        return data

    def registration(self) -> Registration:
        data = self.cleaned_data
        return Registration(
            name=data["name"],
            spec=self.declared(),
            cloud_type=data["cloud_type"],
            data_center=data["data_center"],
            min_bid_per_gpu=data["min_bid_per_gpu"],
        )


class MaintenanceForm(forms.Form):
    starts_at = forms.DateTimeField(
        label="Starts (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    ends_at = forms.DateTimeField(
        label="Ends (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    reason = forms.CharField(max_length=200, required=False)


class ImmediateMaintenanceForm(forms.Form):
    hours = forms.IntegerField(min_value=1, max_value=72)
    reason = forms.CharField(max_length=200, required=False)

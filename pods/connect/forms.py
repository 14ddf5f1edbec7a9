"""Forms of the connect pages."""

from __future__ import annotations

import re

from django import forms

from pods.connect.ssh import InvalidKey, parse_public_key
from pods.models import ProxyAccess

REGISTRY = re.compile(r"^(https?://)?[a-z0-9.-]+(:\d{1,5})?(/[a-z0-9._/-]*)?$", re.IGNORECASE)


class SshKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, required=False, help_text="Optional; defaults to the key's comment."
    )
    public_key = forms.CharField(
        label="Public key",
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… you@laptop"}
        ),
        help_text="The contents of ~/.ssh/id_ed25519.pub (or id_rsa.pub, id_ecdsa.pub).",
    )

    def clean_public_key(self) -> str:
        try:
            parse_public_key(self.cleaned_data["public_key"])
        except InvalidKey as error:
            raise forms.ValidationError(str(error)) from error
        return self.cleaned_data["public_key"]


class RegistryCredentialForm(forms.Form):
    name = forms.CharField(max_length=100)
    registry = forms.CharField(
        max_length=255,
        initial="docker.io",
        help_text="Registry host, optionally with a path prefix: docker.io, ghcr.io/acme, "
        "registry.example.com:5000. Pods whose image lives there pull with this login.",
    )
    username = forms.CharField(max_length=255)
    password = forms.CharField(
        label="Password or access token",
        max_length=4096,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. It is never shown again.",
    )

    def clean_registry(self) -> str:
        value = self.cleaned_data["registry"].strip()
        if not REGISTRY.match(value):
            raise forms.ValidationError("Enter a host such as ghcr.io or registry.example.com.")
        return value


class ProxyAccessForm(forms.Form):
    access = forms.ChoiceField(choices=ProxyAccess.choices)

"""A member who may deploy tries to give a pod environment variables that would reach, or
could be made to reach, programs outside the pod: the dynamic loader's, shell start-up hooks,
interpreter hooks, and names no shell could even set. Each is refused next to its own row, in
the deploy wizard and in templates; PATH and other everyday names stay allowed. (The REST API
takes no environment yet: /api/v1/ has only `me` and API keys.)"""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.urls import reverse

from pods.models import Pod, PodTemplate
from pods.validators import validate_env_name
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import catalogue

REFUSED = [
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_ls",
    "SHELLOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
]
MALFORMED = ["1X", "X-Y", "A=B", "A B", "é", "X\u200bY", "BASH_FUNC_ls%%"]
ALLOWED = ["PATH", "PYTHONPATH", "TMPDIR", "HF_HOME", "CUDA_VISIBLE_DEVICES", "_X1"]


@pytest.fixture
def client(alice, team):
    catalogue()
    return login(alice)


def wizard(**changes) -> dict:
    data = {
        "action": "deploy",
        "compute": "gpu",
        "cloud_type": "SECURE",
        "gpu_type": "NVIDIA A40",
        "gpu_count": "1",
        "image": "python:3.11-slim",
        "container_disk_gb": "5",
        "volume_gb": "1",
        "volume_mount_path": "/workspace",
        "pricing": "on_demand",
        "env_rows": "1",
    }
    return {**data, **changes}


def template(**changes) -> dict:
    data = {
        "name": "Attacker's template",
        "image": "python:3.11-slim",
        "container_disk_gb": "5",
        "volume_gb": "1",
        "volume_mount_path": "/workspace",
        "env_rows": "1",
        "action": "save",
    }
    return {**data, **changes}


def row_errors(response) -> dict[str, str]:
    found = re.findall(r'data-error-for="(env_key_\d+)">([^<]*)<', response.content.decode())
    return {field: html_lib.unescape(message) for field, message in found}


@pytest.mark.parametrize("name", REFUSED)
def test_the_wizard_refuses_a_variable_that_hooks_into_other_programs(client, team, name):
    audit_before = AuditEvent.objects.count()
    url = reverse("pod_deploy", args=[team.slug])
    response = client.post(url, wizard(env_key_0=name, env_value_0="/workspace/evil.so"))

    assert response.status_code == 400
    assert row_errors(response)["env_key_0"].startswith(f"{name} is not allowed")
    assert Pod.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before


@pytest.mark.parametrize("name", MALFORMED)
def test_the_wizard_refuses_a_name_that_is_not_a_variable_name(client, team, name):
    url = reverse("pod_deploy", args=[team.slug])
    response = client.post(url, wizard(env_key_0=name, env_value_0="x"))

    assert response.status_code == 400
    assert "letters, digits and underscores" in row_errors(response)["env_key_0"]
    assert Pod.objects.count() == 0


def test_each_refused_row_gets_its_own_message_and_allowed_rows_none(client, team):
    rows = {"env_rows": "3", "env_key_0": "LD_PRELOAD", "env_key_1": "PATH"}
    rows |= {"env_key_2": "BASH_ENV", "env_value_0": "a", "env_value_1": "/opt/bin:/usr/bin"}
    response = client.post(reverse("pod_deploy", args=[team.slug]), wizard(**rows))

    errors = row_errors(response)
    assert set(errors) == {"env_key_0", "env_key_2"}
    assert errors["env_key_0"].startswith("LD_PRELOAD ")
    assert errors["env_key_2"].startswith("BASH_ENV ")


def test_the_wizard_refuses_a_name_longer_than_a_hundred_characters(client, team):
    url = reverse("pod_deploy", args=[team.slug])
    response = client.post(url, wizard(env_key_0="X" * 101, env_value_0="x"))

    assert response.status_code == 400
    assert "at most 100 characters" in row_errors(response)["env_key_0"]


@pytest.mark.parametrize("name", ALLOWED)
def test_the_wizard_accepts_everyday_names_path_included(client, team, name):
    url = reverse("pod_deploy", args=[team.slug])
    response = client.post(url, wizard(action="review", env_key_0=name, env_value_0="/opt"))

    assert response.status_code == 200
    assert row_errors(response) == {}
    assert 'data-testid="review"' in response.content.decode()


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "X-Y"])
def test_a_template_refuses_the_variable_on_create_and_on_edit(client, team, name):
    create = client.post(
        reverse("template_create", args=[team.slug]), template(env_key_0=name, env_value_0="x")
    )
    assert create.status_code == 200 and "env_key_0" in row_errors(create)
    assert not PodTemplate.objects.exists()

    saved = PodTemplate.objects.create(team=team, name="Fine", image="python:3.11-slim")
    edit = reverse("template_edit", args=[team.slug, saved.public_id])
    response = client.post(edit, template(env_key_0=name, env_value_0="x"))

    assert "env_key_0" in row_errors(response)
    saved.refresh_from_db()
    assert saved.env == [] and saved.name == "Fine"


def test_a_template_keeps_path(client, team):
    url = reverse("template_create", args=[team.slug])
    client.post(url, template(env_key_0="PATH", env_value_0="/opt/conda/bin:/usr/bin"))

    assert PodTemplate.objects.get().env == [{"key": "PATH", "value": "/opt/conda/bin:/usr/bin"}]


def test_a_stored_template_with_a_refused_name_is_flagged_when_applied(client, team):
    stored = PodTemplate.objects.create(
        team=team,
        name="Old",
        image="python:3.11-slim",
        env=[{"key": "LD_PRELOAD", "value": "/workspace/x.so"}, {"key": "MODE", "value": "a"}],
    )
    url = reverse("pod_deploy", args=[team.slug])
    response = client.post(url, wizard(template=stored.public_id))

    assert response.status_code == 400
    assert set(row_errors(response)) == {"env_key_0"}
    assert Pod.objects.count() == 0


def test_the_one_validator_is_what_every_entry_point_calls():
    for name in [*REFUSED, *MALFORMED, "X" * 101]:
        with pytest.raises(Exception, match="allowed|letters"):
            validate_env_name(name)
    for name in ALLOWED:
        validate_env_name(name)

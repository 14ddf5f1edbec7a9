"""Storage (network volumes, pod volumes) and templates (CRUD, visibility)."""

from django.urls import reverse

from pods import services
from pods.models import NetworkVolume, PodTemplate
from pods.runtime.base import network_volume_dir
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import stopped_pod


def test_it_creates_grows_and_deletes_a_network_volume(
    team, alice, parts, django_capture_on_commit_callbacks
):
    client = login(alice)
    response = client.post(
        reverse("network_volume_create", args=[team.slug]),
        {"name": "datasets", "size_gb": "50", "data_center": parts["dc"].id},
    )
    assert response.status_code == 302
    volume = NetworkVolume.objects.get(team=team)
    client.post(
        reverse("network_volume_grow", args=[team.slug, volume.public_id]), {"size_gb": "40"}
    )
    volume.refresh_from_db()
    assert volume.size_gb == 50  # shrinking is refused
    client.post(
        reverse("network_volume_grow", args=[team.slug, volume.public_id]), {"size_gb": "80"}
    )
    volume.refresh_from_db()
    assert volume.size_gb == 80
    network_volume_dir(volume.public_id).mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("network_volume_delete", args=[team.slug, volume.public_id]))
    assert not NetworkVolume.objects.exists()
    assert not network_volume_dir(volume.public_id).exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"network_volume.created", "network_volume.grown", "network_volume.deleted"} <= actions


def test_it_refuses_a_bad_network_volume_and_creates_nothing(team, alice, parts):
    response = login(alice).post(
        reverse("network_volume_create", args=[team.slug]),
        {"name": "", "size_gb": "0", "data_center": "NOPE"},
    )
    assert response.status_code == 400
    assert not NetworkVolume.objects.exists()


def test_it_keeps_a_network_volume_that_a_pod_uses(team, alice, parts):
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    pod = stopped_pod(team, parts["machine"], network_volume=volume, volume_gb=0)
    client = login(alice)
    client.post(reverse("network_volume_delete", args=[team.slug, volume.public_id]))
    assert NetworkVolume.objects.filter(pk=volume.pk).exists()
    page = client.get(reverse("storage", args=[team.slug])).content.decode()
    assert pod.name in page


def test_it_lists_pod_volumes_with_their_pods(team, alice, parts):
    pod = stopped_pod(team, parts["machine"], name="trainer", volume_gb=20)
    page = login(alice).get(reverse("storage", args=[team.slug])).content.decode()
    assert "trainer" in page and "20 GB" in page and pod.volume_mount_path in page


def test_it_creates_edits_and_deletes_a_team_template(team, alice):
    client = login(alice)
    data = {
        "name": "My server",
        "image": "python:3.11-slim",
        "container_disk_gb": "5",
        "volume_gb": "1",
        "volume_mount_path": "/workspace",
        "start_command": "python3 app.py",
        "http_ports": "8000",
        "tcp_ports": "22",
        "env_rows": "1",
        "env_key_0": "MODE",
        "env_value_0": "prod",
        "is_public": "on",
        "action": "save",
    }
    assert client.post(reverse("template_create", args=[team.slug]), data).status_code == 302
    template = PodTemplate.objects.get(team=team)
    assert template.ports == [{"port": 8000, "protocol": "http"}, {"port": 22, "protocol": "tcp"}]
    assert template.env == [{"key": "MODE", "value": "prod"}] and template.is_public
    edit = reverse("template_edit", args=[team.slug, template.public_id])
    client.post(edit, {**data, "name": "Renamed", "is_public": ""})
    template.refresh_from_db()
    assert template.name == "Renamed" and not template.is_public
    client.post(reverse("template_delete", args=[team.slug, template.public_id]))
    assert not PodTemplate.objects.exists()


def test_it_refuses_bad_template_fields(team, alice):
    data = {
        "name": "",
        "image": "BAD IMAGE",
        "container_disk_gb": "0",
        "volume_gb": "1",
        "volume_mount_path": "/proc/x",
        "http_ports": "99999",
        "tcp_ports": "",
        "env_rows": "1",
        "env_key_0": "9X",
        "env_value_0": "",
        "action": "save",
    }
    response = login(alice).post(reverse("template_create", args=[team.slug]), data)
    html = response.content.decode()
    for field in ("name", "image", "container_disk_gb", "volume_mount_path", "http_ports"):
        assert f'data-error-for="{field}"' in html, field
    assert 'data-error-for="env_key_0"' in html
    assert not PodTemplate.objects.exists()


def test_it_shows_official_own_and_other_teams_public_templates_only(team, alice, charlie):
    other = charlie.memberships.get().team
    PodTemplate.objects.create(name="Official one", image="ubuntu:22.04")
    PodTemplate.objects.create(team=other, name="Shared by charlie", image="a:1", is_public=True)
    PodTemplate.objects.create(team=other, name="Charlie secret", image="a:1")
    page = login(alice).get(reverse("template_list", args=[team.slug])).content.decode()
    assert "Official one" in page and "Shared by charlie" in page
    assert "Charlie secret" not in page


def test_it_cannot_edit_official_or_other_teams_templates(team, alice, charlie):
    official = PodTemplate.objects.create(name="Official one", image="ubuntu:22.04")
    theirs = PodTemplate.objects.create(
        team=charlie.memberships.get().team, name="x", image="a:1", is_public=True
    )
    client = login(alice)
    for template in (official, theirs):
        url = reverse("template_edit", args=[team.slug, template.public_id])
        assert client.get(url).status_code == 404
    try:
        services.delete_template(actor=alice, template=official)
    except services.PodError as error:
        assert "Official" in str(error)
    assert PodTemplate.objects.filter(pk=official.pk).exists()


def test_it_refuses_a_port_in_both_lists_on_a_template(team, alice):
    data = {
        "name": "Clash",
        "image": "python:3.11-slim",
        "container_disk_gb": "5",
        "volume_gb": "1",
        "volume_mount_path": "/workspace",
        "http_ports": "8000",
        "tcp_ports": "8000",
        "env_rows": "0",
        "action": "save",
    }
    response = login(alice).post(reverse("template_create", args=[team.slug]), data)
    assert 'data-error-for="tcp_ports"' in response.content.decode()
    assert not PodTemplate.objects.exists()


def test_a_team_template_declares_the_runtimes_it_runs_on(team, alice):
    client = login(alice)
    data = {
        "name": "Container only",
        "image": "python:3.11-slim",
        "container_disk_gb": "5",
        "volume_gb": "0",
        "volume_mount_path": "/workspace",
        "env_rows": "0",
        "runtimes": ["docker"],
        "action": "save",
    }
    form = client.get(reverse("template_create", args=[team.slug])).content.decode()
    assert 'name="runtimes" value="docker"' in form and 'value="process"' in form
    assert client.post(reverse("template_create", args=[team.slug]), data).status_code == 302
    template = PodTemplate.objects.get(team=team)
    assert template.runtimes == ["docker"] and not template.runs_on("process")
    edit = reverse("template_edit", args=[team.slug, template.public_id])
    assert "checked" in client.get(edit).content.decode()
    client.post(edit, {**data, "runtimes": []})
    template.refresh_from_db()
    assert template.runtimes == [] and template.runs_on("process")
    bad = client.post(edit, {**data, "runtimes": ["mainframe"]})
    assert 'data-error-for="runtimes"' in bad.content.decode()
    template.refresh_from_db()
    assert template.runtimes == []

"""/v1/templates, /v1/networkvolumes and /v1/containerregistryauth as runpodctl 2.7.2 calls
them (`internal/api/templates.go`, `volumes.go`, `registry.go`), the request bodies its structs
marshal and its structs decoding the answers. Writes go through the services (audited);
refused input changes nothing; outsiders get 404, Basic members and read-only keys 403."""

import pytest

from pods.models import NetworkVolume, PodTemplate, RegistryCredential
from teams.models import ApiKey, AuditEvent, Membership, Role, Team
from tests.api.runpodctl_structs import NETWORK_VOLUME, REGISTRY_AUTH, TEMPLATE, decode
from tests.api.test_api_keys import make_key
from tests.api.test_runpod_rest_endpoints import call, role_secret


@pytest.fixture
def outsider(charlie) -> str:
    other = Team.objects.create(name="Other", slug="other", is_personal=False)
    Membership.objects.create(user=charlie, team=other, role=Role.ADMIN)
    return make_key(other, charlie)[1]


# Templates ----------------------------------------------------------------------------------

# runpodctl template create --name web --image nginx:1.27 --ports 80/http,22/tcp
#   --env '{"A":"1"}' --container-disk-in-gb 15 --docker-start-cmd ... (TemplateCreateRequest)
TEMPLATE_CREATE = {
    "name": "web",
    "imageName": "nginx:1.27",
    "ports": ["80/http", "22/tcp"],
    "dockerStartCmd": ["nginx", "-g", "daemon off;"],
    "env": {"A": "1"},
    "containerDiskInGb": 15,
    "volumeInGb": 5,
    "volumeMountPath": "/data",
    "readme": "# web",
}


def test_it_creates_lists_and_gets_templates(client, team, secret, alice):
    response = call(client, "POST", "/templates", secret, TEMPLATE_CREATE)
    assert response.status_code == 201, response.content
    created = decode(response.content, TEMPLATE)
    template = PodTemplate.objects.get()
    assert created == {
        "id": template.public_id,
        "name": "web",
        "imageName": "nginx:1.27",
        "isServerless": False,
        "isPublic": False,
        "isRunpod": False,
        "category": "NVIDIA",
        "ports": ["80/http", "22/tcp"],
        "dockerEntrypoint": [],
        "dockerStartCmd": ["nginx", "-g", "daemon off;"],
        "env": {"A": "1"},
        "containerDiskInGb": 15,
        "containerRegistryAuthId": None,
        "volumeInGb": 5,
        "volumeMountPath": "/data",
        "readme": "# web",
    }
    assert template.start_command == "nginx -g 'daemon off;'"
    assert AuditEvent.objects.filter(resource_id=template.public_id).count() == 1
    PodTemplate.objects.create(team=None, name="Official", image="ubuntu:22.04")
    listed = decode(call(client, "GET", "/templates", secret).content, TEMPLATE, many=True)
    assert [t["id"] for t in listed] == [template.public_id]  # only the team's own
    everything = call(client, "GET", "/templates?includeRunpodTemplates=true", secret).json()
    assert [t["name"] for t in everything] == ["Official", "web"]
    got = call(client, "GET", f"/templates/{template.public_id}", secret)
    assert decode(got.content, TEMPLATE) == created


def test_patch_changes_only_what_it_names(client, team, secret):
    template = PodTemplate.objects.get(
        public_id=call(client, "POST", "/templates", secret, TEMPLATE_CREATE).json()["id"]
    )
    # runpodctl template update <id> --name web2 --env '{"B":"2"}' (TemplateUpdateRequest)
    body = {"name": "web2", "env": {"B": "2"}}
    response = call(client, "PATCH", f"/templates/{template.public_id}", secret, body)
    assert response.status_code == 200, response.content
    template.refresh_from_db()
    assert (template.name, template.env) == ("web2", [{"key": "B", "value": "2"}])
    assert (template.image, template.container_disk_gb, template.volume_mount_path) == (
        "nginx:1.27",
        15,
        "/data",
    )
    assert template.ports == [{"port": 80, "protocol": "http"}, {"port": 22, "protocol": "tcp"}]
    again = call(client, "POST", f"/templates/{template.public_id}/update", secret, {"readme": ""})
    assert again.status_code == 200
    assert PodTemplate.objects.get().readme == ""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x"}, "image"),
        ({**TEMPLATE_CREATE, "ports": "80/http"}, "ports"),
        ({**TEMPLATE_CREATE, "ports": ["80/udp"]}, "ports"),
        ({**TEMPLATE_CREATE, "containerDiskInGb": 1.5}, "containerDiskInGb"),
        ({**TEMPLATE_CREATE, "dockerEntrypoint": ["sh"]}, "dockerEntrypoint"),
        ({**TEMPLATE_CREATE, "containerRegistryAuthId": "abc"}, "containerRegistryAuthId"),
        ({**TEMPLATE_CREATE, "category": "AMD"}, "category"),
    ],
)
def test_bad_template_input_is_refused_by_name(client, team, secret, body, message):
    response = call(client, "POST", "/templates", secret, body)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert not PodTemplate.objects.exists()


def test_it_deletes_a_template(client, team, secret):
    template_id = call(client, "POST", "/templates", secret, TEMPLATE_CREATE).json()["id"]
    assert call(client, "DELETE", f"/templates/{template_id}", secret).status_code == 204
    assert not PodTemplate.objects.exists()
    assert AuditEvent.objects.filter(resource_id=template_id).count() == 2


def test_templates_of_others_are_not_found_and_official_ones_not_writable(
    client, team, secret, outsider
):
    template_id = call(client, "POST", "/templates", secret, TEMPLATE_CREATE).json()["id"]
    official = PodTemplate.objects.create(team=None, name="Official", image="ubuntu:22.04")
    assert call(client, "GET", "/templates", outsider).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        response = call(client, method, f"/templates/{template_id}", outsider, {"name": "x"})
        assert response.status_code == 404
    assert call(client, "GET", f"/templates/{official.public_id}", secret).status_code == 200
    path = f"/templates/{official.public_id}"
    assert call(client, "PATCH", path, secret, {"name": "mine"}).status_code == 404
    assert call(client, "DELETE", path, secret).status_code == 404
    assert sorted(PodTemplate.objects.values_list("name", flat=True)) == ["Official", "web"]


# Network volumes ----------------------------------------------------------------------------


def test_it_creates_grows_and_deletes_a_network_volume(client, parts, team, secret):
    # runpodctl network-volume create --name data --size 10 --data-center-id EU-RO-1
    body = {"name": "data", "size": 10, "dataCenterId": "EU-RO-1"}
    response = call(client, "POST", "/networkvolumes", secret, body)
    assert response.status_code == 201, response.content
    created = decode(response.content, NETWORK_VOLUME)
    volume = NetworkVolume.objects.get()
    assert created == {"id": volume.public_id, **body}
    listed = call(client, "GET", "/networkvolumes", secret).content
    assert decode(listed, NETWORK_VOLUME, many=True) == [created]
    path = f"/networkvolumes/{volume.public_id}"
    grown = call(client, "PATCH", path, secret, {"size": 20})
    assert decode(grown.content, NETWORK_VOLUME)["size"] == 20
    shrunk = call(client, "POST", f"{path}/update", secret, {"size": 5})
    assert shrunk.status_code == 400 and "larger" in shrunk.json()["error"]
    renamed = call(client, "PATCH", path, secret, {"name": "other"})
    assert renamed.status_code == 400 and "name" in renamed.json()["error"]
    assert NetworkVolume.objects.get().size_gb == 20
    assert call(client, "DELETE", path, secret).status_code == 204
    assert not NetworkVolume.objects.exists()
    actions = AuditEvent.objects.filter(resource_id=volume.public_id).values_list("action")
    assert sorted(a for (a,) in actions) == [
        "network_volume.created",
        "network_volume.deleted",
        "network_volume.grown",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "d", "size": 10}, "dataCenterId"),
        ({"name": "d", "size": 10, "dataCenterId": "MARS-1"}, "dataCenterId"),
        ({"name": "d", "size": "10", "dataCenterId": "EU-RO-1"}, "size"),
        ({"name": "d", "size": 0, "dataCenterId": "EU-RO-1"}, "size"),
        ({"size": 10, "dataCenterId": "EU-RO-1"}, "name"),
    ],
)
def test_bad_volume_input_is_refused_by_name(client, parts, team, secret, body, message):
    response = call(client, "POST", "/networkvolumes", secret, body)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert not NetworkVolume.objects.exists()


def test_another_teams_volume_is_not_found(client, parts, team, secret, outsider):
    body = {"name": "data", "size": 10, "dataCenterId": "EU-RO-1"}
    volume_id = call(client, "POST", "/networkvolumes", secret, body).json()["id"]
    assert call(client, "GET", "/networkvolumes", outsider).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        response = call(client, method, f"/networkvolumes/{volume_id}", outsider, {"size": 99})
        assert response.status_code == 404
    assert NetworkVolume.objects.get().size_gb == 10


# Registry auth ------------------------------------------------------------------------------


def test_it_creates_lists_gets_and_deletes_registry_auth(client, team, secret):
    body = {"name": "hub", "username": "me", "password": "s3cret"}
    response = call(client, "POST", "/containerregistryauth", secret, body)
    assert response.status_code == 201, response.content
    credential = RegistryCredential.objects.get()
    created = decode(response.content, REGISTRY_AUTH)
    assert created == {"id": credential.public_id, "name": "hub", "username": "me"}
    assert "s3cret" not in response.content.decode()
    listed = call(client, "GET", "/containerregistryauth", secret).content
    assert decode(listed, REGISTRY_AUTH, many=True) == [created]
    path = f"/containerregistryauth/{credential.public_id}"
    assert decode(call(client, "GET", path, secret).content, REGISTRY_AUTH) == created
    assert call(client, "DELETE", path, secret).status_code == 204
    assert not RegistryCredential.objects.exists()


def test_bad_registry_input_is_refused(client, team, secret):
    for body in ({"name": "hub", "username": "me"}, {"name": 5, "username": "u", "password": "p"}):
        assert call(client, "POST", "/containerregistryauth", secret, body).status_code == 400
    assert not RegistryCredential.objects.exists()


def test_another_teams_registry_auth_is_not_found(client, team, secret, outsider):
    body = {"name": "hub", "username": "me", "password": "s3cret"}
    credential_id = call(client, "POST", "/containerregistryauth", secret, body).json()["id"]
    path = f"/containerregistryauth/{credential_id}"
    assert call(client, "GET", path, outsider).status_code == 404
    assert call(client, "DELETE", path, outsider).status_code == 404
    assert RegistryCredential.objects.exists()


# Roles and read-only keys -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["basic", "read-only"])
def test_basic_members_and_read_only_keys_cannot_write(client, parts, team, alice, who):
    secret = (
        role_secret(team, Role.BASIC)
        if who == "basic"
        else make_key(team, alice, ApiKey.Permission.READ_ONLY)[1]
    )
    assert call(client, "GET", "/templates", secret).status_code == 200
    assert call(client, "GET", "/networkvolumes", secret).status_code == 200
    volume = {"name": "data", "size": 10, "dataCenterId": "EU-RO-1"}
    registry = {"name": "hub", "username": "me", "password": "p"}
    for path, body in [
        ("/templates", TEMPLATE_CREATE),
        ("/networkvolumes", volume),
        ("/containerregistryauth", registry),
    ]:
        assert call(client, "POST", path, secret, body).status_code == 403, path
    assert not PodTemplate.objects.exists() and not NetworkVolume.objects.exists()
    assert not RegistryCredential.objects.exists()


def test_a_basic_member_cannot_read_registry_auth(client, team):
    response = call(client, "GET", "/containerregistryauth", role_secret(team, Role.BASIC))
    assert response.status_code == 403

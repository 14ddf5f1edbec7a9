"""Every root field of /graphql for the role matrix test (tests/test_role_matrix.py): the
document to send and the capability (teams.access.CAPABILITIES) it needs."""

from pods.connect.services import save_registry_credential
from pods.models import PodTemplate
from teams.models import Membership, Role
from tests.pods.factories import catalogue
from tests.pods.matrix import a_pod
from tests.role_matrix import GraphqlOp
from tests.serverless.factories import an_endpoint, serverless_template


def a_credential(team) -> str:
    admin = Membership.objects.filter(team=team, role=Role.ADMIN).first().user
    credential = save_registry_credential(
        actor=admin, team=team, name="matrix", registry="docker.io", username="u", password="p"
    )
    return credential.public_id


def pod_id(team) -> str:
    return a_pod(team)["pod_id"]


def on_pod(field: str, selection: str = "{ id }"):
    return lambda team: f'mutation {{ {field}(input: {{podId: "{pod_id(team)}"}}) {selection} }}'


GPU_DEPLOY = (
    'mutation { podFindAndDeployOnDemand(input: {name: "m", imageName: "ubuntu", '
    'cloudType: ALL, gpuTypeId: "NVIDIA A40", gpuCount: 1}) { id } }'
)
CPU_DEPLOY = 'mutation { deployCpuPod(input: {name: "m", imageName: "ubuntu"}) { id } }'
TEMPLATE = 'mutation { saveTemplate(input: {name: "m", imageName: "ubuntu"}) { id } }'
REGISTRY = 'mutation { saveRegistryAuth(input: {name: "m", username: "u", password: "p"}) { id } }'


def update_registry(team) -> str:
    return (
        f'mutation {{ updateRegistryAuth(input: {{id: "{a_credential(team)}", '
        'username: "u", password: "p"}) { id } }'
    )


def delete_registry(team) -> str:
    return f'mutation {{ deleteRegistryAuth(registryAuthId: "{a_credential(team)}") }}'


def a_template(team) -> str:
    template = PodTemplate.objects.create(team=team, name="matrix", image="ubuntu")
    return f'{{ podTemplate(id: "{template.public_id}") {{ id }} }}'


def bid_resume(team) -> str:
    return (
        f'mutation {{ podBidResume(input: {{podId: "{pod_id(team)}", bidPerGpu: 0.5, '
        "gpuCount: 1}) { id } }"
    )


USER_SETTINGS = (
    'mutation { updateUserSettings(input: {pubKey: "ssh-ed25519 '
    'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl m"}) { id } }'
)


def an_endpoint_id(team) -> str:
    return an_endpoint(team).public_id


def save_endpoint(team) -> str:
    catalogue()  # AMPERE_48 is the A40 here
    return (
        f'mutation {{ saveEndpoint(input: {{name: "m", templateId: '
        f'"{serverless_template(team).public_id}", gpuIds: "AMPERE_48"}}) {{ id }} }}'
    )


def update_endpoint_template(team) -> str:
    return (
        f'mutation {{ updateEndpointTemplate(input: {{endpointId: "{an_endpoint_id(team)}", '
        f'templateId: "{serverless_template(team).public_id}"}}) {{ id }} }}'
    )


GRAPHQL_OPERATIONS = [
    GraphqlOp("myself", "member", lambda team: "{ myself { id email } }"),
    GraphqlOp("gpuTypes", "member", lambda team: "{ gpuTypes { id displayName } }"),
    GraphqlOp("pod", "use", lambda team: f'{{ pod(input: {{podId: "{pod_id(team)}"}}) {{ id }} }}'),
    GraphqlOp("podTemplates", "use", lambda team: "{ podTemplates { id } }"),
    GraphqlOp("podTemplate", "use", a_template),
    GraphqlOp("dataCenters", "member", lambda team: "{ dataCenters { id } }"),
    GraphqlOp("podFindAndDeployOnDemand", "deploy", lambda team: GPU_DEPLOY),
    GraphqlOp("deployCpuPod", "deploy", lambda team: CPU_DEPLOY),
    GraphqlOp("podStop", "deploy", on_pod("podStop")),
    GraphqlOp("podResume", "deploy", on_pod("podResume")),
    GraphqlOp("podBidResume", "deploy", bid_resume),
    GraphqlOp("podTerminate", "deploy", on_pod("podTerminate", "")),
    GraphqlOp("saveTemplate", "deploy", lambda team: TEMPLATE),
    GraphqlOp("serverlessGpuPools", "member", lambda team: "{ serverlessGpuPools { id } }"),
    GraphqlOp("saveEndpoint", "deploy", save_endpoint),
    GraphqlOp("updateEndpointTemplate", "deploy", update_endpoint_template),
    GraphqlOp("saveRegistryAuth", "deploy", lambda team: REGISTRY),
    GraphqlOp("updateRegistryAuth", "deploy", update_registry),
    GraphqlOp("deleteRegistryAuth", "deploy", delete_registry),
    GraphqlOp("updateUserSettings", "use", lambda team: USER_SETTINGS),
]
